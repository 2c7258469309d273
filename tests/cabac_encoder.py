"""A CABAC arithmetic encoder written from the standard (9.3.4), to test the decoder against."""

from __future__ import annotations

from c_tables import c_arrays, flatten


def _table(name: str) -> list[int]:
    """The numbers of a C array initialiser in cabac_tables.h, flattened."""
    return flatten(c_arrays("cabac_tables.h")[name][2])


RANGE_LPS = _table("kRangeTabLps")
TRANS_LPS = _table("kTransIdxLps")
TRANS_MPS = _table("kTransIdxMps")
INIT_I = _table("kCabacInitI")
INIT_PB = _table("kCabacInitPB")


def initial_states(cabac_init_idc: int, slice_qp: int) -> list[tuple[int, int]]:
    """(pStateIdx, valMPS) per context (9.3.1.1)."""
    table = INIT_I if cabac_init_idc < 0 else INIT_PB[cabac_init_idc * 2048:(cabac_init_idc + 1) * 2048]
    qp = min(max(slice_qp, 0), 51)
    states = []
    for ctx in range(1024):
        m, n = table[2 * ctx], table[2 * ctx + 1]
        pre = min(max(((m * qp) >> 4) + n, 1), 126)
        states.append((63 - pre, 0) if pre <= 63 else (pre - 64, 1))
    return states


class CabacEncoder:
    def __init__(self, cabac_init_idc: int, slice_qp: int) -> None:  # 9.3.4.1
        self.states = initial_states(cabac_init_idc, slice_qp)
        self.low, self.range, self.outstanding, self.first = 0, 510, 0, True
        self.bits: list[int] = []

    def _put(self, b: int) -> None:  # PutBit (9.3.4.2)
        if self.first:
            self.first = False
        else:
            self.bits.append(b)
        while self.outstanding > 0:
            self.bits.append(1 - b)
            self.outstanding -= 1

    def _renorm(self) -> None:  # RenormE
        while self.range < 256:
            if self.low < 256:
                self._put(0)
            elif self.low >= 512:
                self.low -= 512
                self._put(1)
            else:
                self.low -= 256
                self.outstanding += 1
            self.range <<= 1
            self.low <<= 1

    def decision(self, ctx: int, bin_val: int) -> None:  # EncodeDecision (9.3.4.2)
        p, mps = self.states[ctx]
        lps = RANGE_LPS[4 * p + ((self.range >> 6) & 3)]
        self.range -= lps
        if bin_val != mps:
            self.low += self.range
            self.range = lps
            if p == 0:
                mps = 1 - mps
            p = TRANS_LPS[p]
        else:
            p = TRANS_MPS[p]
        self.states[ctx] = (p, mps)
        self._renorm()

    def bypass(self, bin_val: int) -> None:  # EncodeBypass (9.3.4.4)
        self.low <<= 1
        if bin_val:
            self.low += self.range
        if self.low >= 1024:
            self._put(1)
            self.low -= 1024
        elif self.low < 512:
            self._put(0)
        else:
            self.low -= 512
            self.outstanding += 1

    def terminate(self, bin_val: int) -> None:  # EncodeTerminate + EncodeFlush (9.3.4.5)
        self.range -= 2
        if bin_val:
            self.low += self.range
            self.range = 2
            self._renorm()
            self._put((self.low >> 9) & 1)
            self.bits += [(self.low >> 8) & 1, 1]  # WriteBits(((codILow >> 7) & 3) | 1, 2)
        else:
            self._renorm()

    def rbsp(self) -> bytes:
        """The bits so far, padded with zeros to whole bytes."""
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
