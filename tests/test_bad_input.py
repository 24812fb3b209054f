"""Every bad argument to a kernel binding raises a clear TypeError/ValueError."""
import numpy as np
import pytest

from neuropil.functional import gemm
from neuropil import _kernels as K

f32 = np.float32


def m(*shape, dtype=f32):
    return np.ones(shape, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex64, bool])
def test_gemm_rejects_non_float_dtype(dtype):
    with pytest.raises(TypeError, match=r"gemm: a must be float32 or float64, got"):
        gemm(m(2, 3, dtype=dtype), m(3, 2))
    with pytest.raises(TypeError, match=r"gemm: b must be float32 or float64, got"):
        gemm(m(2, 3), m(3, 2, dtype=dtype))


def test_gemm_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match=r"gemm: a is float32 but b is float64"):
        gemm(m(2, 3), m(3, 2, dtype=np.float64))


def test_gemm_rejects_big_endian():
    with pytest.raises(TypeError, match=r"gemm: a must be float32 or float64, got >f4"):
        gemm(m(2, 3).astype(">f4"), m(3, 2))


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), ()])
def test_gemm_rejects_wrong_rank(shape):
    with pytest.raises(ValueError, match=r"gemm: a must be 2-D with shape \(M, K\), got shape"):
        gemm(np.ones(shape, f32), m(3, 2))
    with pytest.raises(ValueError, match=r"gemm: b must be 2-D with shape \(K, N\), got shape"):
        gemm(m(2, 3), np.ones(shape, f32))


def test_gemm_rejects_inner_mismatch():
    with pytest.raises(ValueError, match=r"inner dimensions differ: op\(a\) is \(M=2, K=3\) "
                                         r"but op\(b\) is \(K=4, N=5\)"):
        gemm(m(2, 3), m(4, 5))
    with pytest.raises(ValueError, match=r"a.shape=\(2, 3\) with trans_a=True"):
        gemm(m(2, 3), m(3, 5), trans_a=True)


def test_gemm_rejects_wrong_out_shape():
    with pytest.raises(ValueError, match=r"gemm: out must have shape \(2, 5\), got \(5, 2\)"):
        gemm(m(2, 3), m(3, 5), out=m(5, 2))


def test_gemm_rejects_wrong_out_dtype():
    with pytest.raises(TypeError, match=r"gemm: out must be float32 like a and b, got float64"):
        gemm(m(2, 3), m(3, 5), out=m(2, 5, dtype=np.float64))


def test_gemm_rejects_read_only_out():
    out = m(2, 5)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"gemm: out is read-only"):
        gemm(m(2, 3), m(3, 5), out=out)


def test_gemm_rejects_non_contiguous_out():
    out = m(2, 10)[:, ::2]
    with pytest.raises(ValueError, match=r"gemm: out must be C-contiguous"):
        gemm(m(2, 3), m(3, 5), out=out)


def test_gemm_rejects_out_that_is_not_an_array():
    with pytest.raises(TypeError, match=r"gemm: out must be a numpy.ndarray, got list"):
        gemm(m(2, 3), m(3, 5), out=[[0.0] * 5] * 2)


def test_gemm_rejects_aliasing_out():
    a = m(4, 4)
    with pytest.raises(ValueError, match=r"gemm: out overlaps a in memory"):
        gemm(a, m(4, 4), out=a)
    b = m(4, 4)
    with pytest.raises(ValueError, match=r"gemm: out overlaps b in memory"):
        gemm(m(4, 4), b, out=b)
    buf = m(8, 4)
    with pytest.raises(ValueError, match=r"out overlaps a"):
        gemm(buf[:4], m(4, 4), out=buf[2:6])


def test_gemm_beta_without_out():
    with pytest.raises(ValueError, match=r"gemm: beta=1.0 needs out="):
        gemm(m(2, 3), m(3, 5), beta=1.0)


def test_gemm_none_input():
    with pytest.raises(TypeError, match=r"gemm: a must be an array, got None"):
        gemm(None, m(3, 5))


def test_binding_rejects_non_contiguous_directly():
    # The binding itself never silently copies (a copy would hide writes).
    a = m(4, 6)[:, ::2]
    with pytest.raises(ValueError, match=r"gemm: a must be C-contiguous"):
        K.gemm(a, m(3, 2), m(4, 2))


def test_nothing_crashed_and_results_still_right():
    a = np.arange(6, dtype=f32).reshape(2, 3)
    b = np.arange(12, dtype=f32).reshape(3, 4)
    np.testing.assert_array_equal(gemm(a, b), a @ b)
