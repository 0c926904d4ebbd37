"""A labels colormap that scales to millions of cells: a label → palette lookup table.

napari's ``DirectLabelColormap`` keeps one dict entry per label and builds its texture
mapping from that dict in Python, which stalls the viewer for seconds at 10⁶ cells. Every
colouring of a run has few distinct colours, though: the K topic colours, or the 256
entries of a matplotlib colormap (a ``ListedColormap`` of N = 256 colours, so binning the
values into its 256 entries gives *exactly* the colours matplotlib gives). So the colormap
here holds

* a small palette (row 0 transparent, then one row per distinct colour), and
* a numpy lookup table ``label id → palette row`` (``uint8``/``uint16``, the texture dtype
  napari's vispy layer expects for that many colours),

and maps each displayed slice with one vectorised ``np.take``. Building one for 10⁶ cells
takes milliseconds, off the GUI thread; napari then builds a texture of a few hundred
colours. Label ids that are negative or larger than :data:`MAX_LUT_ID` are matched with a
sorted search instead of a table.
"""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.colormaps._accelerated_cmap import minimum_dtype_for_labels
from pydantic import PrivateAttr

__all__ = ["MAX_LUT_ID", "LutLabelColormap"]

#: Largest label id held in a dense lookup table (64 Mi entries × 2 bytes at most).
MAX_LUT_ID = 2**26
_TRANSPARENT = np.zeros(4, dtype=np.float32)


class LutLabelColormap(DirectLabelColormap):
    """A direct labels colormap defined by a palette and a label → palette-row table.

    Build it with :meth:`from_codes`; labels not in the table (and 0) are transparent.
    ``color_dict`` is left (almost) empty: napari reads the colours through the
    overridden texture methods. With *show selected label*, every cell of the selected
    cell's colour stays visible (the texture knows colours, not cells).
    """

    _palette: np.ndarray = PrivateAttr(default_factory=lambda: _TRANSPARENT[None].copy())
    _lut: np.ndarray | None = PrivateAttr(default=None)
    _sorted_ids: np.ndarray | None = PrivateAttr(default=None)
    _sorted_rows: np.ndarray | None = PrivateAttr(default=None)
    _tex_dtype: np.dtype = PrivateAttr(default=np.dtype(np.uint8))

    @classmethod
    def from_codes(
        cls, ids: np.ndarray, codes: np.ndarray, palette: np.ndarray
    ) -> LutLabelColormap:
        """Colour label ``ids[i]`` with ``palette[codes[i]]`` (codes < 0: transparent).

        Parameters
        ----------
        ids
            Label ids of the cells (any integers; 0 stays transparent).
        codes
            Palette row of each cell, same length as ``ids``.
        palette
            ``(n, 4)`` RGBA colours in [0, 1].
        """
        ids = np.asarray(ids).astype(np.int64, copy=False)
        codes = np.asarray(codes).astype(np.int64, copy=False)
        palette = np.asarray(palette, dtype=np.float32).reshape(-1, 4)
        cmap = cls(color_dict={None: _TRANSPARENT, 0: _TRANSPARENT})
        cmap._palette = np.vstack([_TRANSPARENT[None], palette])
        cmap._tex_dtype = minimum_dtype_for_labels(len(palette) + 2)
        rows = np.where(codes >= 0, codes + 1, 0).astype(cmap._tex_dtype)
        rows[ids == 0] = 0
        if ids.size and ids.min() >= 0 and ids.max() <= MAX_LUT_ID:
            lut = np.zeros(int(ids.max(initial=0)) + 2, dtype=cmap._tex_dtype)
            lut[ids] = rows
            lut[-1] = 0  # sentinel: ids past the table clip onto it
            cmap._lut = lut
        else:
            order = np.argsort(ids, kind="stable")
            cmap._sorted_ids, cmap._sorted_rows = ids[order], rows[order]
        return cmap

    # ------------------------------------------------------------------ mapping
    @property
    def palette(self) -> np.ndarray:
        """``(n + 1, 4)`` float32 colours; row 0 is transparent."""
        return self._palette

    def rows(self, values) -> np.ndarray:
        """Palette row of each label value (0: transparent)."""
        values = np.asarray(values)
        if values.dtype.kind not in "iu":
            values = values.astype(np.int64)
        if self._lut is not None:
            if values.dtype.kind == "i" and values.size and values.min() < 0:
                values = np.where(values < 0, len(self._lut) - 1, values)
            return np.take(self._lut, values, mode="clip")
        if self._sorted_ids is None or not self._sorted_ids.size:
            return np.zeros(values.shape, dtype=self._tex_dtype)
        flat = values.astype(np.int64, copy=False)
        pos = np.clip(np.searchsorted(self._sorted_ids, flat), 0, len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[pos] == flat, self._sorted_rows[pos], 0).astype(
            self._tex_dtype
        )

    def _data_to_texture(self, values):
        """Labels → texture values: unchanged for ≤ 16-bit data, else palette rows."""
        arr = np.asarray(values)
        if arr.dtype.itemsize <= 2:
            if arr.dtype.kind == "i":
                arr = arr.view(np.dtype(f"uint{8 * arr.dtype.itemsize}"))
            return arr if np.ndim(values) else arr.dtype.type(arr)
        out = self.rows(arr)
        return out if np.ndim(values) else out.dtype.type(out)

    def _get_mapping_from_cache(self, data_dtype):
        """Colours of every value of a ≤ 16-bit dtype (napari's texture for such data)."""
        data_dtype = np.dtype(data_dtype)
        if data_dtype.itemsize > 2:
            return None
        key = f"_lut_{data_dtype}"
        if key not in self._cache_other:
            unsigned = np.dtype(f"uint{8 * data_dtype.itemsize}")
            values = np.arange(np.iinfo(unsigned).max + 1, dtype=unsigned).view(data_dtype)
            self._cache_other[key] = self._palette[self.rows(values)]
        return self._cache_other[key]

    def map(self, values) -> np.ndarray:
        """RGBA of each label value (an int gives one colour)."""
        if isinstance(values, int | np.integer):
            if self.use_selection and int(values) != self.selection:
                return _TRANSPARENT.copy()
            return self._palette[int(self.rows(np.asarray([values]))[0])].copy()
        values = np.asarray(values)
        if values.dtype.kind == "f":
            values = values.astype(np.int64)
        mapped = self._palette[self.rows(values)]
        if self.use_selection:
            mapped[values != self.selection] = 0
        return mapped

    def _map_without_cache(self, values: np.ndarray) -> np.ndarray:
        return self._palette[self.rows(values)]

    def _selection_as_minimum_dtype(self, dtype: np.dtype) -> int:
        return int(self.rows(np.asarray([self.selection]))[0])

    # ------------------------------------------------------------------ texture
    @property
    def _num_unique_colors(self) -> int:  # type: ignore[override]
        return len(self._palette) - 1

    def _values_mapping_to_minimum_values_set(self, apply_selection: bool = True):
        """``({None: 0}, {row: colour})``: the texture's colours, row 0 transparent."""
        return {None: 0}, dict(enumerate(self._palette))

    @property
    def _label_mapping_and_color_dict(self):  # type: ignore[override]
        return self._values_mapping_to_minimum_values_set()
