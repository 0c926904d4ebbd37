"""The "Save to store" part of the Topic model widget, and its messages.

A mixin of :class:`._fit_widget.TopicModelWidget`: it needs the widget's ``saved`` run
(``{"results", "model", "source"}`` or None) and its ``message`` label. The store is the
one the tissue was read from; a tissue without a store (the demo sample, a vendor folder)
is first written as a new store, at a path asked for. An existing run is only replaced
after the user agrees. Errors (a read-only store...) are shown, never raised.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog, QMessageBox

from ..io._errors import TopomicsInputError
from ._save import is_store, run_exists, save_run

_ERROR_STYLE = "color: #ff6b6b;"


class SavingMixin:
    """Saving the last run, and showing outcomes in the widget's ``message`` label."""

    def _ask_overwrite(self, run_name: str, store: str) -> bool:
        answer = QMessageBox.question(
            self, "Replace run?", f"Run {run_name!r} already exists in {store}. Replace it?"
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_new_store(self) -> str | None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save tissue and run as a new SpatialData store",
            str(Path.home() / "tissue.zarr"), "SpatialData store (*.zarr)",
        )
        if not path:
            return None
        return path if path.endswith(".zarr") else path + ".zarr"

    def save(self) -> str | None:
        """Write the last run into its store (asking before replacing a run); the table."""
        if self.saved is None:
            self._fail("Nothing to save yet: run the model first.")
            return None
        results, source = self.saved["results"], self.saved["source"]
        store, sdata, overwrite = source.path, None, False
        if not is_store(store):
            store = self._ask_new_store()
            if store is None:
                return None
            sdata = None if is_store(store) else source.sdata
        try:
            if sdata is None and run_exists(store, results.run_name):
                if not self._ask_overwrite(results.run_name, store):
                    self._say(f"Not saved: run {results.run_name!r} is already in {store}.")
                    return None
                overwrite = True
            table = save_run(store, results, model=self.saved["model"], overwrite=overwrite,
                             sdata=sdata)
        except TopomicsInputError as err:
            self._fail(str(err))
            return None
        if sdata is not None:
            source.path = str(Path(store).expanduser().absolute())
        self._say(f"Saved run {results.run_name!r} as table {table!r} in {store}.")
        return table

    def _say(self, text: str) -> None:
        self.message.setStyleSheet("")
        self.message.setText(text)

    def _fail(self, text: str) -> None:
        from napari.utils.notifications import show_error

        self.message.setStyleSheet(_ERROR_STYLE)
        self.message.setText(text)
        show_error(text)
