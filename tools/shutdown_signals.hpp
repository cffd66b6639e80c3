// The CLI's long-running commands (worker, serve) shut down gracefully on SIGTERM or SIGINT.
#pragma once

#include <signal.h>

namespace cli {

// Blocks SIGTERM and SIGINT in this thread and in every thread started after it (they inherit
// the mask), so that one thread can take them with sigwait() on the set returned; ignores
// SIGPIPE (a peer gone mid-write is an error reply, not a death).
inline sigset_t block_shutdown_signals() {
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);
    return sigs;
}

}  // namespace cli
