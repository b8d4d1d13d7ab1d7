"""CRC-32C (Castagnoli), as TensorFlow checksums tensor-bundle data and table blocks.

Polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial value and final xor 0xFFFFFFFF; check value of
b"123456789" is 0xE3069283. Table blocks store the *masked* form: ``((crc >> 15 | crc << 17) + 0xA282EAD8)``.
The loop runs under Numba (slicing-by-8): pure Python would take seconds per hundred megabytes.
"""

from __future__ import annotations

import numba
import numpy as np

from ..ops import compile_notice  # noqa: F401  (before the checksum kernel can compile)

_POLY = 0x82F63B78


def _tables() -> np.ndarray:
    table = np.zeros((8, 256), np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[0, i] = c
    for k in range(1, 8):
        for i in range(256):
            prev = int(table[k - 1, i])
            table[k, i] = (prev >> 8) ^ int(table[0, prev & 0xFF])
    return table


_TABLE = _tables()


@numba.njit(cache=True, nogil=True)
def _crc(data, table):  # data: uint8[:]
    crc = np.uint32(0xFFFFFFFF)
    n = data.shape[0]
    i = 0
    while i + 8 <= n:
        lo = crc ^ (np.uint32(data[i]) | (np.uint32(data[i + 1]) << 8)
                    | (np.uint32(data[i + 2]) << 16) | (np.uint32(data[i + 3]) << 24))
        crc = (table[7, lo & 0xFF] ^ table[6, (lo >> 8) & 0xFF] ^ table[5, (lo >> 16) & 0xFF]
               ^ table[4, lo >> 24] ^ table[3, data[i + 4]] ^ table[2, data[i + 5]]
               ^ table[1, data[i + 6]] ^ table[0, data[i + 7]])
        i += 8
    while i < n:
        crc = (crc >> 8) ^ table[0, (crc ^ data[i]) & 0xFF]
        i += 1
    return crc ^ np.uint32(0xFFFFFFFF)


def crc32c(data) -> int:
    """CRC-32C of a bytes-like object."""
    arr = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    return int(_crc(arr, _TABLE))


def unmask(masked: int) -> int:
    """Undo LevelDB's checksum masking."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
