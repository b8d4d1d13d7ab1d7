"""The photo library: index a folder into SQLite, then search it by keyword and by face.

- :mod:`.analyze`  the pure per-image function (file -> :class:`ImageRecord`), mappable by any engine
- :mod:`.index`    the SQLite schema and its transactional writes
- :mod:`.indexer`  walking a folder, incremental planning, engines (in-process, processes, Dask), progress
- :mod:`.search`   keyword search (with WordNet ancestors) and nearest-face search (:class:`FaceIndex`)
- :mod:`.people`   clustering faces into people
"""
