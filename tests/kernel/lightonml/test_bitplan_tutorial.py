"""Stands for LightOn's bit-plane tutorial (``examples/api-docs/bitplan_encoding_tutorial.rst``):
encoding integers as bit planes stacked along the samples and mixing them back with
``MixingBitPlanDecoder`` (decay 2 for least-significant-first planes, 0.5 for most-first)."""

import numpy as np
import torch


def lsb_first_planes(sample):
    """The tutorial's layout: for each sample, its 8 bit planes, least significant first."""
    bits = np.unpackbits(sample[..., None], axis=-1)[..., ::-1]  # (n, f, 8), LSB first
    return np.ascontiguousarray(bits.transpose(0, 2, 1)).reshape(-1, sample.shape[1])


def test_mixing_planes_recovers_the_integers(lightonml):
    from lightonml.encoding import base

    sample = np.array([[204, 180, 73], [133, 11, 39]], dtype=np.uint8)
    planes = lsb_first_planes(sample)
    assert planes.shape == (16, 3) and set(np.unique(planes)) <= {0, 1}
    decoder = base.MixingBitPlanDecoder(decoding_decay=2)
    assert repr(decoder) == "MixingBitPlanDecoder(n_bits=8, decoding_decay=2)"
    assert np.array_equal(decoder.transform(planes), sample)
    # torch in, torch out (lightonml's preserve_type)
    assert torch.equal(decoder.transform(torch.from_numpy(planes)),
                       torch.from_numpy(sample.astype(np.float32)))


def test_separated_bitplan_encoder_and_its_decoder(lightonml):
    from lightonml.encoding import base

    sample = np.array([[204, 180, 73], [133, 11, 39]], dtype=np.uint8)
    encoder = base.SeparatedBitPlanEncoder(precision=8)
    encoded = encoder.transform(sample)
    assert encoded.shape == (2 * 8, 3)  # unsigned: one side, 8 planes per sample
    # most significant first: mixing with decay 0.5 gives value / 2**7
    mixed = base.MixingBitPlanDecoder(n_bits=8).transform(encoded)
    assert np.array_equal(mixed * 128, sample)
    decoded = base.SeparatedBitPlanDecoder(**encoder.get_params()).transform(encoded)
    assert np.allclose(decoded, sample)


def test_wrong_number_of_bits_is_refused(lightonml):
    import pytest
    from lightonml.encoding import base

    with pytest.raises(ValueError, match="n_bits=8"):
        base.MixingBitPlanDecoder().transform(np.ones((12, 3)))
