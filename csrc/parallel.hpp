// A minimal fork-join helper over std::thread for the memory-bound passes (dtype conversion,
// centring, column sums). std::thread rather than OpenMP on purpose: an OpenMP runtime's
// spinning idle threads fight the pthreads pool of the OpenBLAS that runs the rank-k update
// (measured: conversion share 29 % -> 9 % once the spinning was removed), and torch brings its
// own libgomp into the same process. Threads are started per call, only when the work is large
// enough to repay the ~20-50 us that costs.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

namespace steerid {

// Number of CPUs this process may run on (sched affinity on Linux), capped to [1, 16], unless
// set_threads_override(n > 0) forces n (tuning/testing hook; 0 restores the default).
int available_cpus();
void set_threads_override(int threads);
int threads_override();  // 0 unless set

// Calls fn(begin, end, part) on disjoint contiguous ranges covering [0, n), using up to
// available_cpus() threads (the caller runs part 0) but only as many as give each at least
// `min_per_part` items. Exceptions thrown by fn are re-thrown in the caller after all joined.
// `max_parts` (default: available_cpus()) bounds the part index, for callers that allocate
// per-part buffers.
template <typename Fn>
void parallel_for(Eigen::Index n, Eigen::Index min_per_part, Fn&& fn, int max_parts = 0) {
    using Eigen::Index;
    if (n <= 0) {
        return;
    }
    const Index by_work = std::max<Index>(1, n / std::max<Index>(1, min_per_part));
    const Index parts = std::min<Index>(by_work, max_parts > 0 ? max_parts : available_cpus());
    if (parts <= 1) {
        fn(Index(0), n, Index(0));
        return;
    }
    std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(parts - 1));
    auto bounds = [n, parts](Index p) { return n * p / parts; };
    auto run = [&](Index p) {
        try {
            fn(bounds(p), bounds(p + 1), p);
        } catch (...) {
            errors[static_cast<size_t>(p)] = std::current_exception();
        }
    };
    Index spawned = 1;
    try {
        for (; spawned < parts; ++spawned) {
            threads.emplace_back(run, spawned);
        }
    } catch (...) {
        // Could not start a thread (resource limits): the caller runs the remaining parts.
    }
    run(0);
    for (Index p = spawned; p < parts; ++p) {
        run(p);
    }
    for (auto& t : threads) {
        t.join();
    }
    for (auto& e : errors) {
        if (e) {
            std::rethrow_exception(e);
        }
    }
}

}  // namespace steerid
