import pytest

from solvitaire import interval_with_timeouts, wilson


def test_wilson_hand_computed():
    # 8/10 at z=1.96: centre (0.8+0.19208)/1.38416 = 0.71674, half 1.96*0.16001/1.38416 = 0.22658
    # (hand computed; tolerance 1e-4 covers the 5-digit rounding of the hand arithmetic)
    lo, hi = wilson(8, 2, z=1.96)
    assert lo == pytest.approx(0.49016, abs=1e-4)
    assert hi == pytest.approx(0.94332, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 10, z=1.96)  # hi = 3.8416/13.8416 = 0.27754
    assert lo == 0.0
    assert hi == pytest.approx(0.27754, abs=1e-4)


def test_timeouts_rule():
    # 8 solved, 1 unsolvable, 1 timeout: lo = wilson(8, 2).lo, hi = wilson(9, 1).hi
    # wilson(9, 1).hi = (0.9 + 0.19208 + 1.96*0.13640) / 1.38416 = 0.98212 (hand computed)
    lo, hi = interval_with_timeouts(8, 1, 1, z=1.96)
    assert lo == pytest.approx(0.49016, abs=1e-4)
    assert hi == pytest.approx(0.98212, abs=1e-4)
    with pytest.raises(ValueError, match="counts must be"):
        wilson(-1, 2)
