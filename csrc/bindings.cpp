// pybind11 bindings of steerid._native. This file owns every Python-facing check (types, dtypes,
// shapes, memory layout) and the GIL: arguments are validated while the GIL is held, then the GIL
// is released around all numeric work. Input arrays are read in place (zero-copy); a layout the
// kernels cannot read in place is rejected with a ValueError instead of being copied silently.
#include "dense_block.hpp"
#include "randomized_eigh.hpp"
#include "streaming_covariance.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

namespace py = pybind11;
using steerid::Index;
using steerid::RowMajorView;
using steerid::ScalarKind;
using steerid::StreamingCovariance;

namespace {

constexpr const char* kStateFormat = "steerid.StreamingCovariance/1";

std::string shape_string(const py::array& arr) {
    std::ostringstream out;
    out << "(";
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
        out << (i ? ", " : "") << arr.shape(i);
    }
    out << (arr.ndim() == 1 ? ",)" : ")");
    return out.str();
}

std::string strides_string(const py::array& arr) {
    std::ostringstream out;
    out << "(";
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
        out << (i ? ", " : "") << arr.strides(i);
    }
    out << (arr.ndim() == 1 ? ",)" : ")");
    return out.str();
}

std::string type_name(const py::handle& obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

// Validates a 2-D floating numpy array that the kernels will read in place and returns a view of it.
// `who` prefixes messages (the API name), `name` is the argument's name.
RowMajorView float_matrix_view(const py::handle& obj, const std::string& who, const std::string& name,
                               bool allow_half) {
    const std::string accepted = allow_half ? "float16, float32 or float64" : "float32 or float64";
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error(who + ": " + name + " must be a numpy.ndarray of " + accepted + ", got " +
                             type_name(obj) + "; convert it with np.ascontiguousarray(" + name + ", dtype=np.float64)");
    }
    auto arr = py::reinterpret_borrow<py::array>(obj);
    RowMajorView view;
    const py::dtype dtype = arr.dtype();
    if (dtype.equal(py::dtype::of<double>())) {
        view.kind = ScalarKind::f64;
    } else if (dtype.equal(py::dtype::of<float>())) {
        view.kind = ScalarKind::f32;
    } else if (allow_half && dtype.equal(py::dtype("float16"))) {
        view.kind = ScalarKind::f16;
    } else {
        throw py::type_error(who + ": " + name + " has dtype " + std::string(py::str(dtype)) + "; expected " +
                             accepted + " in native byte order");
    }
    if (arr.ndim() != 2) {
        throw py::value_error(who + ": " + name + " has ndim=" + std::to_string(arr.ndim()) + " (shape " +
                              shape_string(arr) + "); expected a 2-D array");
    }
    const int flags = arr.flags();
    if (!(flags & py::array::c_style)) {
        throw py::value_error(who + ": " + name + " is not C-contiguous (shape " + shape_string(arr) + ", strides " +
                              strides_string(arr) + "); pass np.ascontiguousarray(" + name +
                              ") so it can be read without a copy");
    }
    if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) {
        throw py::value_error(who + ": " + name + " is not aligned in memory; pass np.require(" + name +
                              ", requirements='CA')");
    }
    view.data = arr.data();
    view.rows = static_cast<Index>(arr.shape(0));
    view.cols = static_cast<Index>(arr.shape(1));
    return view;
}

// A Python int (or anything with __index__) -> int64, with a message naming the value when it does not fit.
std::int64_t to_int64(const py::handle& obj, const std::string& what) {
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    if (!index) {
        PyErr_Clear();
        throw py::type_error(what + " must be an integer, got " + type_name(obj) + " " + std::string(py::repr(obj)));
    }
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow != 0 || (value == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        throw py::value_error(what + "=" + std::string(py::str(index)) + " does not fit in a signed 64-bit integer");
    }
    return static_cast<std::int64_t>(value);
}

std::uint64_t to_seed(const py::handle& obj) {
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    if (!index) {
        PyErr_Clear();
        throw py::type_error("randomized_eigh: seed must be an integer, got " + type_name(obj) + " " +
                             std::string(py::repr(obj)));
    }
    const unsigned long long value = PyLong_AsUnsignedLongLong(index.ptr());
    if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::value_error("randomized_eigh: seed=" + std::string(py::str(index)) +
                              " is out of range; expected an integer in [0, 2**64)");
    }
    return static_cast<std::uint64_t>(value);
}

// Reads a float64 1-D/2-D array out of a checkpoint value (copying is fine for checkpoints).
py::array_t<double, py::array::c_style> state_array(const py::handle& obj, const std::string& key,
                                                    const std::vector<py::ssize_t>& expected_shape) {
    const std::string who = "StreamingCovariance.from_state: ";
    py::array arr = py::array::ensure(obj);
    if (!arr) {
        PyErr_Clear();
        throw py::type_error(who + "state['" + key + "'] must be array-like, got " + type_name(obj));
    }
    const char kind = arr.dtype().kind();
    if (kind != 'f' && kind != 'i' && kind != 'u') {
        throw py::type_error(who + "state['" + key + "'] has dtype " + std::string(py::str(arr.dtype())) +
                             "; expected a real floating-point array");
    }
    bool shape_ok = arr.ndim() == static_cast<py::ssize_t>(expected_shape.size());
    for (py::ssize_t i = 0; shape_ok && i < arr.ndim(); ++i) {
        shape_ok = arr.shape(i) == expected_shape[static_cast<size_t>(i)];
    }
    if (!shape_ok) {
        std::ostringstream expected;
        expected << "(";
        for (size_t i = 0; i < expected_shape.size(); ++i) {
            expected << (i ? ", " : "") << expected_shape[i];
        }
        expected << (expected_shape.size() == 1 ? ",)" : ")");
        throw py::value_error(who + "state['" + key + "'] has shape " + shape_string(arr) + "; expected " +
                              expected.str() + " to match d=" + std::to_string(expected_shape[0]));
    }
    return py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
}

py::dict state_of(const StreamingCovariance& acc) {
    const Index d = acc.dim();
    py::array_t<double> mean(d);
    py::array_t<double> m2({d, d});
    double* mean_ptr = mean.mutable_data();
    double* m2_ptr = m2.mutable_data();
    std::int64_t count;
    {
        py::gil_scoped_release release;
        count = acc.snapshot(mean_ptr, m2_ptr);
    }
    py::dict state;
    state["format"] = kStateFormat;
    state["dim"] = py::int_(static_cast<std::int64_t>(d));
    state["count"] = py::int_(count);
    state["mean"] = mean;
    state["m2"] = m2;
    return state;
}

std::unique_ptr<StreamingCovariance> from_state(const py::handle& obj) {
    const std::string who = "StreamingCovariance.from_state: ";
    const py::object mapping_type = py::module_::import("collections.abc").attr("Mapping");
    if (!py::isinstance(obj, mapping_type)) {
        throw py::type_error(who + "state must be a mapping (as returned by state()), got " + type_name(obj));
    }
    auto state = py::reinterpret_borrow<py::object>(obj);
    for (const char* key : {"count", "mean", "m2"}) {
        if (!state.attr("__contains__")(key).cast<bool>()) {
            throw py::value_error(who + "state has no '" + key + "' entry; expected keys 'count', 'mean', 'm2'");
        }
    }
    if (state.attr("__contains__")("format").cast<bool>()) {
        const std::string format = py::str(state["format"]);
        if (format != kStateFormat) {
            throw py::value_error(who + "state format '" + format + "' is not supported; expected '" + kStateFormat + "'");
        }
    }
    const std::int64_t count = to_int64(state["count"], who + "count");
    if (count < 0) {
        throw py::value_error(who + "count=" + std::to_string(count) + " is invalid; expected count >= 0");
    }
    py::array mean_any = py::array::ensure(state["mean"]);
    if (!mean_any || mean_any.ndim() != 1) {
        PyErr_Clear();
        throw py::value_error(who + "state['mean'] must be a 1-D array of length d");
    }
    const py::ssize_t d = mean_any.shape(0);
    if (state.attr("__contains__")("dim").cast<bool>()) {
        const std::int64_t dim = to_int64(state["dim"], who + "dim");
        if (dim != d) {
            throw py::value_error(who + "state['dim']=" + std::to_string(dim) + " but state['mean'] has length " +
                                  std::to_string(d) + "; expected them to agree");
        }
    }
    if (d < 1) {
        throw py::value_error(who + "state['mean'] has length " + std::to_string(d) + "; expected d >= 1");
    }
    auto mean = state_array(state["mean"], "mean", {d});
    auto m2 = state_array(state["m2"], "m2", {d, d});
    auto acc = std::make_unique<StreamingCovariance>(static_cast<Index>(d));
    {
        py::gil_scoped_release release;
        acc->restore(count, mean.data(), m2.data());
    }
    return acc;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "Native linear algebra of steerid (pybind11 + Eigen). Use it through steerid.linalg.";

    py::class_<StreamingCovariance>(m, "StreamingCovariance", R"doc(
Streaming covariance of row blocks, accumulated in float64 (Chan's parallel algorithm).

State: ``count``, ``mean`` (d,) and the scatter matrix ``M2 = sum (x - mean)(x - mean)^T``
(d, d), of which only the lower triangle is updated. Each block is centred on its own mean
in float64 and added with a symmetric rank-k update; raw sums of ``x x^T`` are never formed,
so data with a large mean keep full precision. Memory is O(d^2) whatever the number of rows.
All methods release the GIL while they compute and are safe to call from several threads.

Parameters
----------
d : int
    Number of columns (features), d >= 1.
)doc")
        .def(py::init([](std::int64_t d) {
                 if (d < 1) {
                     throw py::value_error("StreamingCovariance: d=" + std::to_string(d) +
                                           " is invalid; expected a dimension d >= 1");
                 }
                 return std::make_unique<StreamingCovariance>(static_cast<Index>(d));
             }),
             py::arg("d"))
        .def(
            "update",
            [](StreamingCovariance& self, const py::object& X) {
                const RowMajorView view = float_matrix_view(X, "StreamingCovariance.update", "X", true);
                if (view.cols != self.dim()) {
                    throw py::value_error("StreamingCovariance.update: block has " + std::to_string(view.cols) +
                                          " columns, accumulator has d=" + std::to_string(self.dim()));
                }
                py::gil_scoped_release release;
                self.update(view);
            },
            py::arg("X"), R"doc(
Add the rows of ``X`` to the accumulator.

Parameters
----------
X : numpy.ndarray, shape (n, d), dtype float16, float32 or float64, C-contiguous
    The block, read in place (no copy); n may be 0.

Raises
------
TypeError
    ``X`` is not a numpy array or has another dtype (e.g. int64, complex128).
ValueError
    ``X`` is not 2-D, has a number of columns other than ``d``, is not C-contiguous (pass
    ``np.ascontiguousarray(X)``), or holds NaN/Inf (the message gives how many and the first
    (row, col)). A rejected block leaves the accumulator unchanged.
)doc")
        .def(
            "merge",
            [](StreamingCovariance& self, const StreamingCovariance& other) {
                py::gil_scoped_release release;
                self.merge(other);
            },
            py::arg("other"), R"doc(
Add everything ``other`` has seen to this accumulator (Chan's parallel combination).

The result equals one accumulator fed both data streams, in any order. ``other`` is not
modified. Raises ValueError if the dimensions differ.
)doc")
        .def_property_readonly("count", &StreamingCovariance::count, "Number of rows seen so far (int).")
        .def_property_readonly(
            "dim", [](const StreamingCovariance& self) { return static_cast<std::int64_t>(self.dim()); },
            "Number of columns d (int).")
        .def_property_readonly(
            "mean",
            [](const StreamingCovariance& self) {
                py::array_t<double> out(self.dim());
                double* ptr = out.mutable_data();
                {
                    py::gil_scoped_release release;
                    self.copy_mean(ptr);
                }
                return out;
            },
            "Mean of the rows seen so far, a new (d,) float64 array (zeros while count is 0).")
        .def(
            "covariance",
            [](const StreamingCovariance& self, const py::object& ddof_obj) {
                const std::int64_t ddof = to_int64(ddof_obj, "StreamingCovariance.covariance: ddof");
                const Index d = self.dim();
                py::array_t<double> out({d, d});
                double* ptr = out.mutable_data();
                {
                    py::gil_scoped_release release;
                    self.write_covariance(ptr, ddof);
                }
                return out;
            },
            py::arg("ddof") = 1, R"doc(
Covariance ``M2 / (count - ddof)`` as a new symmetric (d, d) float64 array.

``ddof=1`` (default) gives the unbiased sample covariance, as ``numpy.cov``; ``ddof=0`` the
maximum-likelihood one. Raises ValueError if ``ddof < 0`` or ``count <= ddof``.
)doc")
        .def("state", &state_of, R"doc(
Checkpoint of the accumulator as a dict of plain values:
``{"format": str, "dim": int, "count": int, "mean": (d,) float64, "m2": (d, d) float64}``
(``m2`` is the full symmetric scatter matrix). Pass it to ``from_state`` to resume; it can be
stored in HDF5/NPZ as is.
)doc")
        .def_static("from_state", &from_state, py::arg("state"), R"doc(
Rebuild an accumulator from a ``state()`` dict (or any mapping with ``count``, ``mean``,
``m2``; ``dim`` and ``format`` are checked when present). Only the lower triangle of ``m2``
is read. Raises TypeError for a non-mapping or non-numeric entry and ValueError for missing
keys, shapes that disagree with ``d = len(mean)``, a negative count, non-finite values, or
a non-zero state with ``count == 0``.
)doc")
        .def(py::pickle([](const StreamingCovariance& self) { return state_of(self); },
                        [](const py::dict& state) { return from_state(state); }))
        .def("__repr__", [](const StreamingCovariance& self) {
            return "StreamingCovariance(d=" + std::to_string(self.dim()) + ", count=" + std::to_string(self.count()) +
                   ")";
        });

    m.def(
        "randomized_eigh",
        [](const py::object& C, const py::object& k_obj, const py::object& oversample_obj,
           const py::object& power_iters_obj, const py::object& seed_obj) {
            const RowMajorView view = float_matrix_view(C, "randomized_eigh", "C", false);
            if (view.rows != view.cols) {
                throw py::value_error("randomized_eigh: C has shape (" + std::to_string(view.rows) + ", " +
                                      std::to_string(view.cols) + "); expected a square (d, d) matrix");
            }
            const Index d = view.rows;
            const std::int64_t k = to_int64(k_obj, "randomized_eigh: k");
            const std::int64_t oversample = to_int64(oversample_obj, "randomized_eigh: oversample");
            const std::int64_t power_iters = to_int64(power_iters_obj, "randomized_eigh: power_iters");
            const std::uint64_t seed = to_seed(seed_obj);
            if (k < 1 || k > d) {
                throw py::value_error("randomized_eigh: k=" + std::to_string(k) +
                                      " is out of range; expected 1 <= k <= d=" + std::to_string(d));
            }
            if (oversample < 0) {
                throw py::value_error("randomized_eigh: oversample=" + std::to_string(oversample) +
                                      " is invalid; expected oversample >= 0");
            }
            if (power_iters < 0) {
                throw py::value_error("randomized_eigh: power_iters=" + std::to_string(power_iters) +
                                      " is invalid; expected power_iters >= 0");
            }
            steerid::EighResult result;
            {
                py::gil_scoped_release release;
                steerid::require_finite(view, "randomized_eigh: C");
                const double rel_tol = view.kind == ScalarKind::f64 ? 1.5e-8 : 3.5e-4;  // ~sqrt(machine eps)
                steerid::require_symmetric(view, rel_tol, "randomized_eigh: C");
                if (view.kind == ScalarKind::f64) {
                    // Zero-copy: the row-major buffer read column-major is C^T, which equals C.
                    Eigen::Map<const Eigen::MatrixXd> c(static_cast<const double*>(view.data), d, d);
                    result = steerid::randomized_eigh(c, k, oversample, power_iters, seed);
                } else {
                    const Eigen::MatrixXd c =
                        Eigen::Map<const Eigen::MatrixXf>(static_cast<const float*>(view.data), d, d).cast<double>();
                    result = steerid::randomized_eigh(c, k, oversample, power_iters, seed);
                }
            }
            py::array_t<double> values(static_cast<py::ssize_t>(k));
            py::array_t<double> vectors({static_cast<py::ssize_t>(d), static_cast<py::ssize_t>(k)});
            Eigen::Map<Eigen::VectorXd>(values.mutable_data(), k) = result.values;
            Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(vectors.mutable_data(), d,
                                                                                               k) = result.vectors;
            return py::make_tuple(values, vectors);
        },
        py::arg("C"), py::arg("k"), py::arg("oversample") = 10, py::arg("power_iters") = 2, py::arg("seed") = 0,
        R"doc(
Top-k eigenpairs of a symmetric positive semi-definite matrix (Halko-Martinsson-Tropp).

A Gaussian test matrix Omega (d, l), l = min(k + oversample, d), drawn from a seeded
mt19937_64 with a hand-written Box-Muller transform, is multiplied by C; every product is
followed by a Householder QR re-orthonormalisation, each power iteration is two products
(the range of C^(2q+1) Omega), and the Rayleigh-Ritz matrix Q^T C Q gives the eigenpairs.
The result is deterministic for a seed. The GIL is released while it computes.

Parameters
----------
C : numpy.ndarray, shape (d, d), float32 or float64, C-contiguous, symmetric
    Read in place when float64 (float32 is widened to a float64 copy).
k : int
    Number of eigenpairs, 1 <= k <= d.
oversample : int, default 10
    Extra sample columns (>= 0).
power_iters : int, default 2
    Power iterations (>= 0), two products with C each.
seed : int, default 0
    Seed in [0, 2**64).

Returns
-------
values : (k,) float64, descending
vectors : (d, k) float64 with orthonormal columns; each column's largest-magnitude entry is positive.

Raises
------
TypeError for a non-array or non-float C; ValueError for a C that is not 2-D, square,
C-contiguous, finite or symmetric, and for k, oversample or power_iters out of range.
)doc");
}
