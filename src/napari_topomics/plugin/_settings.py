"""Preferences and remembered widget values of the "Topic model" widget.

Two kinds of settings:

* **Preferences** (default device, torch thread cap, whether to remember widget values) are
  the plugin's npe2 ``configurations`` (napari's Preferences dialog, stored by napari in
  ``<napari config dir>/napari-topomics.yaml``), read with
  ``napari.settings.get_plugin_settings``. Where napari cannot provide them (plugin not
  registered, older napari), :data:`DEFAULT_PREFERENCES` apply.
* **Widget values** (topics, epochs, seed, likelihoods, advanced options...) are saved as
  JSON in ``fit_widget.json`` under :func:`settings_dir` whenever they change, and
  restored when the widget is created again, in this session or the next.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGIN_NAME = "napari-topomics"
#: The npe2 ``configurations`` key holding the fitting preferences.
CONFIG_KEY = "fitting"
#: Environment variable overriding the folder of the remembered widget values.
SETTINGS_DIR_ENV = "NAPARI_TOPOMICS_CONFIG_DIR"
VALUES_FILE = "fit_widget.json"
_FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preferences:
    """The plugin's preferences (npe2 ``configurations`` ``fitting``).

    Attributes
    ----------
    default_device
        Device preselected when no value is remembered (``auto``/``cpu``/``cuda``/``mps``).
    torch_threads
        Torch CPU threads used for training (1 keeps napari smooth while training).
    remember_values
        Whether the widget remembers its values between sessions.
    """

    default_device: str = "auto"
    torch_threads: int = 1
    remember_values: bool = True


DEFAULT_PREFERENCES = Preferences()


def plugin_settings_group() -> Any | None:
    """napari's evented settings group of our preferences, or None where unavailable."""
    try:
        from napari.settings import get_plugin_settings

        return getattr(get_plugin_settings(PLUGIN_NAME), CONFIG_KEY)
    except Exception:  # noqa: BLE001 - napari without our manifest, or without the API
        return None


def preferences() -> Preferences:
    """The current preferences (napari's plugin settings, else the defaults)."""
    group = plugin_settings_group()
    if group is None:
        return DEFAULT_PREFERENCES
    values = {}
    for name, default in DEFAULT_PREFERENCES.__dict__.items():
        value = getattr(group, name, default)
        values[name] = value if isinstance(value, type(default)) else default
    threads = values["torch_threads"]
    values["torch_threads"] = threads if threads >= 1 else 1
    return Preferences(**values)


def settings_dir() -> Path:
    """Folder of the remembered widget values.

    ``$NAPARI_TOPOMICS_CONFIG_DIR`` if set; else ``napari-topomics/`` beside napari's own
    settings file (so ``NAPARI_CONFIG`` and napari's test fixtures move it too); else the
    user config folder from platformdirs.
    """
    override = os.environ.get(SETTINGS_DIR_ENV)
    if override:
        return Path(override)
    try:
        from napari import settings as napari_settings

        cfg = getattr(napari_settings, "_CFG_PATH", None)
        if cfg:
            return Path(cfg).parent / PLUGIN_NAME
    except Exception:  # noqa: BLE001 - napari missing or broken: fall back below
        pass
    from platformdirs import user_config_dir

    return Path(user_config_dir(PLUGIN_NAME, appauthor=False))


def values_path() -> Path:
    """The JSON file of the remembered widget values."""
    return settings_dir() / VALUES_FILE


def load_values(path: Path | None = None) -> dict[str, Any]:
    """The remembered widget values (empty when none, or unreadable, or not remembered)."""
    if path is None and not preferences().remember_values:
        return {}
    path = values_path() if path is None else Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.warning("Ignoring unreadable topic-model widget settings %s: %s", path, err)
        return {}
    if not isinstance(payload, dict) or payload.get("version") != _FORMAT_VERSION:
        return {}
    values = payload.get("values")
    return dict(values) if isinstance(values, dict) else {}


def save_values(values: Mapping[str, Any], path: Path | None = None) -> bool:
    """Remember ``values`` (JSON-serialisable); returns False when it could not be saved.

    The file is replaced atomically, so a crash never leaves half a file.
    """
    if path is None and not preferences().remember_values:
        return False
    path = values_path() if path is None else Path(path)
    text = json.dumps({"version": _FORMAT_VERSION, "values": dict(values)}, indent=1)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fit_widget-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as err:
        logger.warning("Could not save topic-model widget settings to %s: %s", path, err)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        return False
    return True
