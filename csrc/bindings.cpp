// pybind11 bindings of steerid._native. This file owns every Python-facing check (types, dtypes,
// shapes, memory layout) and the GIL: arguments are validated while the GIL is held, then the GIL
// is released around all numeric work. Input arrays are read in place (zero-copy); a layout the
// kernels cannot read in place is rejected with a ValueError instead of being copied silently.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "blas.hpp"
#include "convert.hpp"
#include "dense_block.hpp"
#include "large_buffer.hpp"
#include "parallel.hpp"
#include "randomized_eigh.hpp"
#include "streaming_covariance.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include <cmath>
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
        throw py::type_error(who + ": " + name + " must be a numpy.ndarray of " + accepted + ", got " + type_name(obj) +
                             "; convert it with np.ascontiguousarray(" + name + ", dtype=np.float64)");
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

void check_nonnegative(std::int64_t value, const std::string& name, const std::string& who) {
    if (value < 0) {
        throw py::value_error(who + ": " + name + "=" + std::to_string(value) + " is invalid; expected " + name +
                              " >= 0");
    }
}

std::uint64_t to_seed(const py::handle& obj, const std::string& who = "randomized_eigh") {
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    if (!index) {
        PyErr_Clear();
        throw py::type_error(who + ": seed must be an integer, got " + type_name(obj) + " " +
                             std::string(py::repr(obj)));
    }
    const unsigned long long value = PyLong_AsUnsignedLongLong(index.ptr());
    if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::value_error(who + ": seed=" + std::string(py::str(index)) +
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

// Hands a (rows, cols) row-major buffer to NumPy without a copy; the array owns it.
py::array_t<double> owned_array(steerid::LargeBuffer&& buffer, Index rows, Index cols) {
    auto* owner = new steerid::LargeBuffer(std::move(buffer));
    py::capsule base(owner, [](void* p) { delete static_cast<steerid::LargeBuffer*>(p); });
    return py::array_t<double>(
        {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)},
        {static_cast<py::ssize_t>(cols * sizeof(double)), static_cast<py::ssize_t>(sizeof(double))}, owner->data(),
        base);
}

py::dict state_of(const StreamingCovariance& acc) {
    const Index d = acc.dim();
    py::array_t<double> mean(d);
    steerid::LargeBuffer m2_buffer(static_cast<std::size_t>(d) * static_cast<std::size_t>(d));
    double* mean_ptr = mean.mutable_data();
    double* m2_ptr = m2_buffer.data();
    std::int64_t count;
    {
        py::gil_scoped_release release;
        count = acc.snapshot(mean_ptr, m2_ptr);
    }
    py::array_t<double> m2 = owned_array(std::move(m2_buffer), d, d);
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
            throw py::value_error(who + "state format '" + format + "' is not supported; expected '" + kStateFormat +
                                  "'");
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

// ------------------------------------------------------------------------------ BLAS loading

std::string g_blas_note = "not loaded yet";

void* capsule_pointer(const py::dict& capi, const char* name) {
    if (!capi.contains(name)) {
        throw std::runtime_error(std::string("no ") + name + " in __pyx_capi__");
    }
    py::object capsule = capi[name];
    const char* capsule_name = PyCapsule_GetName(capsule.ptr());
    if (capsule_name == nullptr && PyErr_Occurred()) {
        throw py::error_already_set();
    }
    void* pointer = PyCapsule_GetPointer(capsule.ptr(), capsule_name);
    if (pointer == nullptr) {
        throw py::error_already_set();
    }
    return pointer;
}

// Takes dsyrk/dgemm (BLAS) and dgeqrf/dorgqr/dsyevd (LAPACK) from SciPy's Cython API capsules,
// once, with the GIL held, on the first call that needs them (so importing steerid._native does
// not import SciPy). Without SciPy every kernel falls back to Eigen.
void ensure_blas() {
    static bool attempted = false;  // guarded by the GIL
    if (attempted) {
        return;
    }
    attempted = true;
    try {
        py::module_ cython_blas = py::module_::import("scipy.linalg.cython_blas");
        py::module_ cython_lapack = py::module_::import("scipy.linalg.cython_lapack");
        py::dict blas_capi = cython_blas.attr("__pyx_capi__");
        py::dict lapack_capi = cython_lapack.attr("__pyx_capi__");
        steerid::blas::Table table;
        table.dsyrk = reinterpret_cast<steerid::blas::dsyrk_t>(capsule_pointer(blas_capi, "dsyrk"));
        table.dgemm = reinterpret_cast<steerid::blas::dgemm_t>(capsule_pointer(blas_capi, "dgemm"));
        table.dgeqrf = reinterpret_cast<steerid::blas::dgeqrf_t>(capsule_pointer(lapack_capi, "dgeqrf"));
        table.dorgqr = reinterpret_cast<steerid::blas::dorgqr_t>(capsule_pointer(lapack_capi, "dorgqr"));
        table.dsyevd = reinterpret_cast<steerid::blas::dsyevd_t>(capsule_pointer(lapack_capi, "dsyevd"));
        const std::string version = py::str(py::module_::import("scipy").attr("__version__"));
        table.source = "scipy.linalg.cython_blas/cython_lapack (SciPy " + version + ")";
        steerid::blas::install(table);
        g_blas_note = table.source;
    } catch (const std::exception& error) {
        PyErr_Clear();
        g_blas_note = std::string("Eigen fallback (SciPy's Cython BLAS unavailable: ") + error.what() + ")";
    }
}

// Refuses a d whose (d, d) float64 state alone exceeds the physical memory, instead of letting
// the allocation succeed lazily and the OOM killer end the interpreter.
void require_state_fits(std::int64_t d, const std::string& who) {
    const long double bytes = static_cast<long double>(d) * static_cast<long double>(d) * 8.0L;
    long double physical = 0.0L;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    physical = static_cast<long double>(sysconf(_SC_PHYS_PAGES)) * static_cast<long double>(sysconf(_SC_PAGESIZE));
#endif
    if (physical > 0.0L && bytes > physical) {
        std::ostringstream msg;
        msg.precision(3);
        msg << who << ": d=" << d << " needs a (d, d) float64 matrix of " << static_cast<double>(bytes / 1.0e9L)
            << " GB, more than the " << static_cast<double>(physical / 1.0e9L) << " GB of physical memory";
        PyErr_SetString(PyExc_MemoryError, msg.str().c_str());
        throw py::error_already_set();
    }
}

// Validated view of a symmetric matrix argument C plus the float64 matrix the kernels read:
// float64 is read in place (row-major symmetric == column-major), float32 is widened once.
struct SymmetricInput {
    RowMajorView view;
    Eigen::MatrixXd widened;  // only for float32
    const double* data() const {
        return view.kind == ScalarKind::f64 ? static_cast<const double*>(view.data) : widened.data();
    }
};

RowMajorView symmetric_view(const py::object& C, const std::string& who) {
    const RowMajorView view = float_matrix_view(C, who, "C", false);
    if (view.rows != view.cols) {
        throw py::value_error(who + ": C has shape (" + std::to_string(view.rows) + ", " + std::to_string(view.cols) +
                              "); expected a square (d, d) matrix");
    }
    if (view.rows == 0) {
        throw py::value_error(who + ": C has shape (0, 0); expected d >= 1");
    }
    return view;
}

// Runs with the GIL released: finiteness and symmetry checks, then widening of float32.
void prepare_symmetric(SymmetricInput& input, const std::string& who) {
    const double rel_tol = input.view.kind == ScalarKind::f64 ? 1.5e-8 : 3.5e-4;  // ~sqrt(machine eps)
    steerid::require_finite_symmetric(input.view, rel_tol, who + ": C");
    if (input.view.kind == ScalarKind::f32) {
        const Index d = input.view.rows;
        input.widened =
            Eigen::Map<const Eigen::MatrixXf>(static_cast<const float*>(input.view.data), d, d).cast<double>();
    }
}

// Checks and (for float32) widens C, then runs `solve` on it as a d x d float64 map, all without the
// GIL: the solvers only read C and write their own result.
template <typename Solve>
steerid::EighResult solve_symmetric(SymmetricInput& input, const std::string& who, Solve&& solve) {
    ensure_blas();
    py::gil_scoped_release release;
    prepare_symmetric(input, who);
    const Index d = input.view.rows;
    Eigen::Map<const Eigen::MatrixXd> c(input.data(), d, d);
    return solve(c);
}

py::tuple eigh_result_to_python(const steerid::EighResult& result, Index d) {
    const Index k = result.values.size();
    py::array_t<double> values(static_cast<py::ssize_t>(k));
    py::array_t<double> vectors({static_cast<py::ssize_t>(d), static_cast<py::ssize_t>(k)});
    Eigen::Map<Eigen::VectorXd>(values.mutable_data(), k) = result.values;
    Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(vectors.mutable_data(), d, k) =
        result.vectors;
    return py::make_tuple(values, vectors);
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
                 require_state_fits(d, "StreamingCovariance");
                 return std::make_unique<StreamingCovariance>(static_cast<Index>(d));
             }),
             py::arg("d"))
        .def(
            "update",
            [](StreamingCovariance& self, const py::object& X, const py::object& where) {
                const std::string who = "StreamingCovariance.update";
                const RowMajorView view = float_matrix_view(X, who, "X", true);
                if (view.cols != self.dim()) {
                    throw py::value_error(who + ": block has " + std::to_string(view.cols) +
                                          " columns, accumulator has d=" + std::to_string(self.dim()));
                }
                const std::uint8_t* mask = nullptr;
                py::array mask_array;
                if (!where.is_none()) {
                    if (!py::isinstance<py::array>(where) ||
                        py::reinterpret_borrow<py::array>(where).dtype().kind() != 'b') {
                        throw py::type_error(
                            who + ": where must be a numpy.ndarray of bool (a row mask), got " +
                            (py::isinstance<py::array>(where)
                                 ? "dtype " + std::string(py::str(py::reinterpret_borrow<py::array>(where).dtype()))
                                 : type_name(where)));
                    }
                    mask_array = py::reinterpret_borrow<py::array>(where);
                    if (mask_array.ndim() != 1 || mask_array.shape(0) != static_cast<py::ssize_t>(view.rows)) {
                        throw py::value_error(who + ": where has shape " + shape_string(mask_array) + "; expected (" +
                                              std::to_string(view.rows) + ",), one entry per row of X");
                    }
                    if (!(mask_array.flags() & py::array::c_style)) {
                        throw py::value_error(who + ": where is not contiguous; pass np.ascontiguousarray(where)");
                    }
                    mask = static_cast<const std::uint8_t*>(mask_array.data());
                }
                ensure_blas();
                py::gil_scoped_release release;
                self.update(view, mask);
            },
            py::arg("X"), py::arg("where") = py::none(), R"doc(
Add the rows of ``X`` (or only those where ``where`` is True) to the accumulator.

Parameters
----------
X : numpy.ndarray, shape (n, d), dtype float16, float32 or float64, C-contiguous
    The block, read in place (no copy); n may be 0. float16/float32 are widened to float64
    and centred in one pass (all cores from d = 1024, one thread below); the scatter is added
    with one symmetric rank-k update (BLAS dsyrk) per internal block of rows. Chan's merge
    with the rows seen before is exact and needs no separate pass: the rows are centred on
    the block mean shifted by sqrt(n_a / (n_a + n)) times its distance from the old mean.
where : numpy.ndarray of bool, shape (n,), optional
    Row mask: only rows with True are added (no copy of X is made). Rows left out are not
    read, so they may hold anything, NaN included.

Raises
------
TypeError
    ``X`` is not a numpy array or has another dtype (e.g. int64, complex128); ``where`` is
    not a bool array.
ValueError
    ``X`` is not 2-D, has a number of columns other than ``d``, is not C-contiguous (pass
    ``np.ascontiguousarray(X)``) or not aligned, holds NaN/Inf in a selected row (the message
    gives how many and the first (row, col)), or holds values so large that the scatter would
    overflow float64; ``where`` has the wrong shape. A rejected block leaves the accumulator
    unchanged.
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
                // Huge-page backed like M2: a d = 4096 output otherwise costs 32k page faults.
                steerid::LargeBuffer out(static_cast<std::size_t>(d) * static_cast<std::size_t>(d));
                {
                    py::gil_scoped_release release;
                    self.write_covariance(out.data(), ddof);
                }
                return owned_array(std::move(out), d, d);
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
            const std::string who = "randomized_eigh";
            SymmetricInput input{symmetric_view(C, who), {}};
            const Index d = input.view.rows;
            const std::int64_t k = to_int64(k_obj, who + ": k");
            const std::int64_t oversample = to_int64(oversample_obj, who + ": oversample");
            const std::int64_t power_iters = to_int64(power_iters_obj, who + ": power_iters");
            const std::uint64_t seed = to_seed(seed_obj, who);
            if (k < 1 || k > d) {
                throw py::value_error(who + ": k=" + std::to_string(k) +
                                      " is out of range; expected 1 <= k <= d=" + std::to_string(d));
            }
            check_nonnegative(oversample, "oversample", who);
            check_nonnegative(power_iters, "power_iters", who);
            const steerid::EighResult result =
                solve_symmetric(input, who, [&](const Eigen::Map<const Eigen::MatrixXd>& c) {
                    return steerid::randomized_eigh(c, k, oversample, power_iters, seed);
                });
            return eigh_result_to_python(result, d);
        },
        py::arg("C"), py::arg("k"), py::arg("oversample") = 10, py::arg("power_iters") = 2, py::arg("seed") = 0,
        R"doc(
Top-k eigenpairs of a symmetric positive semi-definite matrix (Halko-Martinsson-Tropp).

A Gaussian test matrix Omega (d, l), l = min(k + oversample, d), drawn from a seeded
mt19937_64 with a hand-written Box-Muller transform, is multiplied by C; every product is
followed by a Householder QR re-orthonormalisation, each power iteration is two products
(the range of C^(2q+1) Omega), and the Rayleigh-Ritz matrix Q^T C Q gives the eigenpairs.
Products run in BLAS dgemm, the QR and the small eigenproblem in LAPACK (SciPy's, through
its Cython API; Eigen if SciPy is missing). The result is deterministic for a seed (up to
the BLAS's own reduction order, which does not change between calls on one machine). The
GIL is released while it computes.

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

    m.def(
        "randomized_eigh_adaptive",
        [](const py::object& C, const py::object& rtol_obj, const py::object& block_obj, const py::object& max_k_obj,
           const py::object& seed_obj, const py::object& oversample_obj, const py::object& power_iters_obj) {
            const std::string who = "randomized_eigh_adaptive";
            SymmetricInput input{symmetric_view(C, who), {}};
            const Index d = input.view.rows;
            if (PyBool_Check(rtol_obj.ptr()) || !PyNumber_Check(rtol_obj.ptr()) || PyComplex_Check(rtol_obj.ptr())) {
                throw py::type_error(who + ": rtol must be a real number, got " + type_name(rtol_obj) + " " +
                                     std::string(py::repr(rtol_obj)));
            }
            const double rtol = PyFloat_AsDouble(rtol_obj.ptr());
            if (rtol == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                throw py::type_error(who + ": rtol must be a real number, got " + type_name(rtol_obj));
            }
            if (!std::isfinite(rtol) || rtol < 0.0) {
                throw py::value_error(who + ": rtol=" + std::string(py::repr(rtol_obj)) +
                                      " is invalid; expected a finite number >= 0");
            }
            const std::int64_t block = to_int64(block_obj, who + ": block");
            const std::int64_t max_k =
                max_k_obj.is_none() ? static_cast<std::int64_t>(d) : to_int64(max_k_obj, who + ": max_k");
            const std::int64_t oversample = to_int64(oversample_obj, who + ": oversample");
            const std::int64_t power_iters = to_int64(power_iters_obj, who + ": power_iters");
            const std::uint64_t seed = to_seed(seed_obj, who);
            if (block < 1) {
                throw py::value_error(who + ": block=" + std::to_string(block) + " is invalid; expected block >= 1");
            }
            if (max_k < 1 || max_k > d) {
                throw py::value_error(who + ": max_k=" + std::to_string(max_k) +
                                      " is out of range; expected 1 <= max_k <= d=" + std::to_string(d));
            }
            check_nonnegative(oversample, "oversample", who);
            check_nonnegative(power_iters, "power_iters", who);
            const steerid::EighResult result =
                solve_symmetric(input, who, [&](const Eigen::Map<const Eigen::MatrixXd>& c) {
                    return steerid::randomized_eigh_adaptive(c, rtol, block, max_k, oversample, power_iters, seed);
                });
            py::tuple pair = eigh_result_to_python(result, d);
            return py::make_tuple(pair[0], pair[1], py::bool_(result.saturated));
        },
        py::arg("C"), py::arg("rtol"), py::arg("block") = 64, py::arg("max_k") = py::none(), py::arg("seed") = 0,
        py::arg("oversample") = 10, py::arg("power_iters") = 2,
        R"doc(
Top eigenpairs of a symmetric PSD matrix, with k grown until the spectrum falls below rtol.

The sampled subspace grows by ``block`` columns at a time (the first block has a margin
``max(oversample, block // 2)`` more); each new block is power-iterated on C deflated by the
subspace already found, with a QR re-orthonormalisation after every product. After each block
the Rayleigh-Ritz values of the whole subspace are computed; growth stops once every value
> rtol * largest lies at least ``margin`` places inside the subspace, or the subspace has
``max_k + margin`` columns, or spans R^d.

Returns
-------
values : (k,) float64, descending
vectors : (d, k) float64, orthonormal columns (sign convention of randomized_eigh)
saturated : bool
    False: every eigenvalue > rtol * largest is among ``values``, so
    ``numerical_rank(values, rtol)`` is the numerical rank. True: all k returned values are
    still above the threshold, so the rank is only known to be >= k (raise ``max_k``).

Raises
------
TypeError / ValueError as randomized_eigh, and for rtol (finite, >= 0), block (>= 1) and
max_k (1 <= max_k <= d) out of range.
)doc");

    m.def(
        "_blas_info",
        []() {
            ensure_blas();
            py::dict info;
            info["source"] = steerid::blas::table().source;
            info["note"] = g_blas_note;
            info["enabled"] = steerid::blas::enabled();
            info["lapack_factorisations"] = steerid::blas::lapack_factorisations();
            info["f16c"] = steerid::half_conversion_uses_f16c();
            info["threads"] = steerid::available_cpus();
            return info;
        },
        "Diagnostics: where the BLAS/LAPACK kernels come from, whether they are used, float16 path, threads.");
    m.def(
        "_set_blas_enabled", [](bool on) { steerid::blas::set_enabled(on); }, py::arg("on"),
        "Testing hook: False makes every kernel use its Eigen fallback (process-wide).");
    m.def(
        "_set_lapack_factorisations", [](bool on) { steerid::blas::set_lapack_factorisations(on); }, py::arg("on"),
        "Tuning hook: True sends the QR and small eigenproblems of the randomized solvers to LAPACK.");
    m.def(
        "_set_threads", [](int threads) { steerid::set_threads_override(threads); }, py::arg("threads"),
        "Tuning/testing hook: threads of the moment and conversion passes, whatever d (0 restores the "
        "default: all CPUs, but one conversion thread below d = 1024).");
    m.def(
        "_set_block_rows",
        [](std::int64_t rows) { StreamingCovariance::set_block_rows_override(static_cast<Index>(rows)); },
        py::arg("rows"), "Tuning/testing hook: rows per internal rank-k update (0 restores the default).");
    m.def(
        "_block_rows", [](std::int64_t d) { return static_cast<std::int64_t>(StreamingCovariance::block_rows(d)); },
        py::arg("d"), "Rows per internal rank-k update used for dimension d.");
}
