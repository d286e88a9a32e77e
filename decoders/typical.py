"""Locally typical sampling (Meister et al. 2023): keep the tokens whose information content is
closest to the entropy, up to mass tau. Pinned to transformers' ``TypicalLogitsWarper``."""

from typing import Annotated

from bench.decoding import LogitsDecoder
from bench.errors import check
from bench.registry import decoder
from decoders.temperature import check_temperature
from decoders.truncation import tempered_truncation


@decoder(
    "typical",
    description="locally typical sampling (Meister et al. 2023): tokens nearest the entropy, up to mass tau, at "
                "temperature t; default tau=0.95 (a value Meister et al. evaluate; transformers' TypicalLogitsWarper)",
    sampling=True,
)
def typical(
    tau: Annotated[float, "typical mass, in (0, 1)"] = 0.95,
    t: Annotated[float, "temperature applied before the truncation, > 0"] = 1.0,
) -> LogitsDecoder:
    check(0 < tau < 1, f"decoder 'typical': tau must be in (0, 1), got {tau}")
    check_temperature("typical", t)
    return tempered_truncation("typical", tau, t)
