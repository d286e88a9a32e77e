"""Eta sampling (Hewitt et al. 2022): drop tokens below min(eta, sqrt(eta) * exp(-entropy)).
Pinned to transformers' ``EtaLogitsWarper``."""

from typing import Annotated

from bench.decoding import LogitsDecoder
from bench.errors import check
from bench.registry import decoder
from decoders.temperature import check_temperature
from decoders.truncation import tempered_truncation


@decoder(
    "eta",
    description="eta sampling (Hewitt et al. 2022): tokens above min(eta, sqrt(eta)*exp(-entropy)), at temperature "
                "t; default eta=0.0009 (Hewitt et al.'s range 3e-4 to 4e-3; transformers' EtaLogitsWarper)",
    sampling=True,
)
def eta(
    eta: Annotated[float, "entropy-dependent cutoff, in (0, 1)"] = 0.0009,
    t: Annotated[float, "temperature applied before the truncation, > 0"] = 1.0,
) -> LogitsDecoder:
    check(0 < eta < 1, f"decoder 'eta': eta must be in (0, 1), got {eta}")
    check_temperature("eta", t)
    return tempered_truncation("eta", eta, t)
