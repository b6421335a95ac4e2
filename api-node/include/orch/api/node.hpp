#pragma once

namespace orch::api {

/// Runs the api-node: parses settings, applies migrations, starts the
/// scheduler (published over CAF's middleman), the NOTIFY listener, the
/// database pool and the HTTP server, then waits for SIGINT or SIGTERM and
/// shuts down in reverse order. Returns the process exit code.
int run_node(int argc, char** argv);

} // namespace orch::api
