"""The photo library: index a folder into SQLite, then search it by keyword and by face.

- :mod:`.analyze`  the pure per-image function (file -> :class:`ImageRecord`), mappable by any engine
- :mod:`.index`    the SQLite schema and its transactional writes
- :mod:`.indexer`  walking a folder, incremental planning, engines (in-process, processes), progress
- :mod:`.cluster`  the Dask engine: the same analysis on a dask.distributed cluster
- :mod:`.words`    keyword search: ImageNet labels (with WordNet ancestors) and face words, suggestions
- :mod:`.search`   nearest-face search, per photo, "similar to this face", recognizers
- :mod:`.face_index` :class:`FaceIndex`: exact nearest faces from a 4-bit code with provable distance bounds
- :mod:`.face_scan` its compiled kernels: the coarse scan, the 8-bit re-check, exact distances
- :mod:`.nibbles` the scan's integer dot product of 4-bit codes (VNNI, AVX2 or portable)
- :mod:`.people`   clustering faces into people, representative faces
"""
