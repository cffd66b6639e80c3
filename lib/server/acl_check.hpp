#pragma once

// ACL check: responsible for refusing to start a server whose Redis user may not run a command
// the server needs, with an error naming each such command, instead of starting and failing
// the same command over and over.
//
// How, for a user with few rights: ACL DRYRUN, COMMAND and ACL GETUSER need rights of their own
// that such a user often lacks. MULTI does not run what it queues, but Redis checks the ACL of
// each command (and of its keys) when it is queued and answers NOPERM right there. So the check
// opens a connection of its own, sends MULTI, waits for its OK (only then is it safe to send
// the rest: without a transaction they would run), queues every command the server sends
// itself or through its scripts, on the keys they touch, and ends with DISCARD. Nothing is run.
//
// A refused handshake (wrong password, CLIENT SETNAME not allowed) fails start() too: every
// connection of the server would fail the same way. When the check cannot be made (Redis
// unreachable or not answering within the command timeout, MULTI itself refused) the server starts
// as before; refusals then show in its logs. Keep the list in acl_check.cpp in step with the
// commands of lib/server and lib/scripts.

#include "core/error.hpp"
#include "runtime/runtime.hpp"
#include "server/context.hpp"

namespace streamfleet::detail {

/// Runs the check on `rt`'s loop and waits for it (not from the loop thread). An error
/// (reply_errc::noperm) names every refused command, errc::auth_failed a refused handshake; Ok
/// when all are allowed or the check could not be made.
Status check_permissions(Runtime& rt, const ServerOptions& opts, Queues queues);

}  // namespace streamfleet::detail
