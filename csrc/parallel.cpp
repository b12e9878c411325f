#include "parallel.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

namespace steerid {

int available_cpus() {
    static const int cpus = []() {
        int n = 0;
#if defined(__linux__)
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof(set), &set) == 0) {
            n = CPU_COUNT(&set);
        }
#endif
        if (n <= 0) {
            n = static_cast<int>(std::thread::hardware_concurrency());
        }
        return std::clamp(n, 1, 16);
    }();
    return cpus;
}

}  // namespace steerid
