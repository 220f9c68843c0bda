"""What a file is, by its first bytes, when it is not a TensorFlow model: a Keras file gets its own message."""
from __future__ import annotations

from pathlib import Path

#: What a Keras file starts with: a Keras 3 ``.keras`` file is a ZIP archive, a Keras 2 ``.h5`` an HDF5 file.
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def keras_file_message(path: Path, data: bytes, hint: str) -> str | None:
    """The error for a Keras (or other non-TensorFlow) file given as a model, told by its magic bytes, or None."""
    export = "open it in Keras, export it with `model.export(dir)` and pass that SavedModel directory"
    if data.startswith(_ZIP_MAGIC):
        import io
        import zipfile

        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            names = set()
        if names & {"config.json", "metadata.json", "model.weights.h5"}:
            return f"{path}: this is a Keras file (a Keras 3 .keras archive), not a SavedModel: {export}"
        return f"{path}: this is a ZIP archive, not a model; unpack it, or {hint}"
    if any(data[offset:offset + 8] == _HDF5_MAGIC for offset in (0, 512, 1024, 2048)):
        return (f"{path}: this is an HDF5 file, as Keras writes .h5 models, not a SavedModel: {export} "
                "(tf.keras/Keras 2: `model.save(dir, save_format=\"tf\")` works too)")
    return None
