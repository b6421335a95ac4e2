#include "orch/api/node.hpp"

#include "orch/api/db_pool.hpp"
#include "orch/api/http_server.hpp"
#include "orch/api/job_store.hpp"
#include "orch/api/metrics.hpp"
#include "orch/api/notifier.hpp"
#include "orch/api/scheduler.hpp"
#include "orch/api/sse_hub.hpp"
#include "orch/catalog.hpp"
#include "orch/config.hpp"
#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/job.hpp"
#include "orch/logging.hpp"
#include "orch/messages.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <thread>
#include <sys/resource.h>
#include <unistd.h>

#ifndef ORCH_VERSION
#  define ORCH_VERSION "0.0.0"
#endif
#ifndef ORCH_MIGRATIONS_DIR
#  define ORCH_MIGRATIONS_DIR "/usr/share/orch/migrations"
#endif

namespace orch::api {

namespace {

class node_config : public caf::actor_system_config {
public:
  explicit node_config(size_t threads) {
    register_message_types(*this);
    enable_heartbeats(*this);
    quiet_idle_threads(*this);
    load<caf::io::middleman>();
    set("scheduler.max-threads", threads);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

options make_options() {
  return options{
    "api-node",
    "orch api-node: the REST API, the job store and the scheduler that "
    "dispatches jobs to worker-nodes.",
    {
      {"DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/orch",
       "PostgreSQL connection URI"},
      {"HTTP_HOST", "127.0.0.1", "address the REST API listens on"},
      {"HTTP_PORT", std::to_string(defaults::http_port),
       "REST API port; 0 picks a free one"},
      {"HTTP_THREADS", "4",
       "HTTP reactor threads; each also runs simple reads on its own "
       "PostgreSQL connection"},
      {"DB_POOL_SIZE", std::to_string(defaults::db_pool_size),
       "PostgreSQL connections for cancels, logs, outputs, /workers and "
       "/ready"},
      {"DB_WRITERS", "1",
       "PostgreSQL connections that group-commit submissions (fewer make "
       "bigger batches)"},
      {"SCHEDULER_DB_CONNECTIONS", "3",
       "PostgreSQL connections of the scheduler: the first claims, the "
       "others persist workers' reports at the same time, split by job "
       "(1: one connection does both in turn)"},
      {"SCHEDULER_HOST", "0.0.0.0",
       "address the scheduler actor is published on (workers connect here)"},
      {"SCHEDULER_PORT", std::to_string(defaults::scheduler_port),
       "CAF port of the scheduler; 0 picks a free one"},
      {"LEASE_SECONDS", "20",
       "lease of a running job; renewed by its worker's heartbeats, and "
       "requeued by any api-node's reaper once it lapses"},
      {"LOG_LEVEL", "info", "trace, debug, info, warn, error or off"},
      {"LOG_FORMAT", "text", "text or json"},
      {"IMAGE_TAG", "unknown", "reported by GET /version"},
      {"ECHO_MESSAGE", "Hello World", "reported by GET /"},
      {"MIGRATIONS_DIR", ORCH_MIGRATIONS_DIR, "folder of NNNN_name.sql files"},
      {"DOCS_DIR", "",
       "folder of the swagger-ui-dist files GET /docs serves (default: the "
       "build tree's or the installed share/orch/docs); without them /docs "
       "lists the routes"},
      {"NO_MIGRATE", "", "skip applying migrations at startup", true},
      {"MIGRATE_ONLY", "", "apply migrations, then exit", true},
      {"PIPELINES_FILE", "",
       "pipeline catalog (YAML or JSON); without one every pipeline name "
       "runs on the mock executor"},
      {"SSE_HEARTBEAT_SECONDS", "15",
       "a comment line goes to every idle event stream this often"},
      {"SSE_MAX_CLIENTS", "4096",
       "event streams (GET /events, /jobs/{id}/events) one api-node "
       "serves at once; more are answered 503"},
      {"SSE_CLIENT_BUFFER_KIB", "1024",
       "unsent data an event stream may hold before its client is "
       "disconnected as too slow (it resumes with Last-Event-ID)"},
      {"SSE_POLL_MS", "100",
       "how often the event hub reads new events while streams are open"},
      {"WORK_ROOT", defaults::work_root,
       "where workers keep job work directories (<job id>/attempt-<n>); "
       "GET /jobs/{id}/outputs serves files from there, so api-nodes and "
       "workers must share it"},
    }};
}

std::string make_scheduler_id() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return std::string{host} + "-" + std::to_string(getpid()) + "-"
         + make_uuid().substr(0, 8);
}

// Every event stream holds two descriptors (Pistache's and the hub's):
// raise the soft limit towards the hard one when the default is too low.
void raise_fd_limit(size_t streams) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return;
  auto want = static_cast<rlim_t>(2 * streams + 1024);
  if (lim.rlim_cur >= want)
    return;
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? want
                                               : std::min(want, lim.rlim_max);
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
    spdlog::warn("cannot raise the open file limit to {}", lim.rlim_cur);
}

int fail(const caf::error& err) {
  spdlog::critical("{}", render(err));
  return 1;
}

} // namespace

int run_node(int argc, char** argv) {
  // Block the shutdown signals before any thread starts, so that only the
  // sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto opts = make_options();
  if (auto err = opts.parse(argc, argv)) {
    std::cerr << "api-node: " << render(err) << "\n";
    return 2;
  }
  if (opts.help_requested()) {
    opts.print_help(std::cout);
    return 0;
  }
  if (auto err = init_logging("api-node", opts.get("LOG_LEVEL"),
                              opts.get("LOG_FORMAT"))) {
    std::cerr << "api-node: " << render(err) << "\n";
    return 2;
  }
  auto http_port = opts.get_int("HTTP_PORT", 0, 65535);
  if (!http_port)
    return fail(http_port.error());
  auto http_threads = opts.get_int("HTTP_THREADS", 1, 256);
  if (!http_threads)
    return fail(http_threads.error());
  auto pool_size = opts.get_int("DB_POOL_SIZE", 1, 256);
  if (!pool_size)
    return fail(pool_size.error());
  auto writers = opts.get_int("DB_WRITERS", 1, 64);
  if (!writers)
    return fail(writers.error());
  auto sched_port = opts.get_int("SCHEDULER_PORT", 0, 65535);
  if (!sched_port)
    return fail(sched_port.error());
  auto sched_conns = opts.get_int("SCHEDULER_DB_CONNECTIONS", 1, 16);
  if (!sched_conns)
    return fail(sched_conns.error());
  auto lease = opts.get_double("LEASE_SECONDS", 1, 3600);
  if (!lease)
    return fail(lease.error());
  auto no_migrate = opts.get_bool("NO_MIGRATE");
  if (!no_migrate)
    return fail(no_migrate.error());
  auto migrate_only = opts.get_bool("MIGRATE_ONLY");
  if (!migrate_only)
    return fail(migrate_only.error());
  auto url = opts.get("DATABASE_URL");
  auto pipelines = std::make_shared<catalog>();
  if (auto file = opts.get("PIPELINES_FILE"); !file.empty()) {
    auto loaded = catalog::load(file);
    if (!loaded) {
      std::cerr << "api-node: " << render(loaded.error()) << "\n";
      return 2;
    }
    *pipelines = std::move(*loaded);
  }
  spdlog::info("api-node {} starting", ORCH_VERSION);
  if (pipelines->configured())
    spdlog::info("pipeline catalog {}: {} pipelines",
                 opts.get("PIPELINES_FILE"), pipelines->pipelines().size());

  if (!*no_migrate) {
    job_store store{url};
    // The database may still be starting (compose, CI): retry for a while.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
    for (auto delay = std::chrono::milliseconds{100};;) {
      auto applied = store.migrate(opts.get("MIGRATIONS_DIR"));
      if (applied) {
        spdlog::info("migrations: {} applied, schema is current", *applied);
        break;
      }
      if (code_of(applied.error()) != ec::database_unavailable
          || std::chrono::steady_clock::now() > deadline)
        return fail(applied.error());
      spdlog::warn("migrations: {}; retrying", render(applied.error()));
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, std::chrono::milliseconds{2000});
    }
  }
  if (*migrate_only)
    return 0;
  {
    // Publish the catalog's limits (max_concurrent) for every scheduler.
    job_store store{url};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
    for (auto delay = std::chrono::milliseconds{100};;) {
      auto err = store.sync_pipelines(*pipelines);
      if (!err)
        break;
      if (code_of(err) != ec::database_unavailable
          || std::chrono::steady_clock::now() > deadline)
        return fail(err);
      spdlog::warn("pipelines: {}; retrying", render(err));
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, std::chrono::milliseconds{2000});
    }
  }

  node_config cfg{2};
  caf::actor_system sys{cfg};
  auto probe = std::make_shared<scheduler_probe>();
  auto metrics = std::make_shared<api_metrics>();
  metrics->watch_probe(probe);
  auto scheduler_id = make_scheduler_id();
  auto scheduler = spawn_scheduler(
    sys, {url, scheduler_id, probe,
          std::chrono::milliseconds{static_cast<int64_t>(*lease * 1000)},
          pipelines, metrics, static_cast<size_t>(*sched_conns)});
  auto sched_host = opts.get("SCHEDULER_HOST");
  auto bound = sys.middleman().publish(
    scheduler, static_cast<uint16_t>(*sched_port),
    sched_host.empty() ? nullptr : sched_host.c_str(), true);
  if (!bound) {
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    return fail(make_error(ec::invalid_configuration,
                           "cannot publish the scheduler on " + sched_host
                             + ":" + std::to_string(*sched_port) + ": "
                             + sys.render(bound.error())));
  }
  spdlog::info("scheduler listening on {}:{} (node {})", sched_host, *bound,
               caf::to_string(sys.node()));

  sse_config scfg;
  auto heartbeat = opts.get_int("SSE_HEARTBEAT_SECONDS", 1, 3600);
  auto max_streams = opts.get_int("SSE_MAX_CLIENTS", 1, 1000000);
  auto stream_buffer = opts.get_int("SSE_CLIENT_BUFFER_KIB", 16, 1 << 20);
  auto stream_poll = opts.get_int("SSE_POLL_MS", 5, 10000);
  for (auto* x : {&heartbeat, &max_streams, &stream_buffer, &stream_poll})
    if (!*x) {
      caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
      return fail(x->error());
    }
  scfg.heartbeat = std::chrono::milliseconds{*heartbeat * 1000};
  scfg.max_clients = static_cast<size_t>(*max_streams);
  scfg.client_buffer_bytes = static_cast<size_t>(*stream_buffer) * 1024;
  scfg.poll_interval = std::chrono::milliseconds{*stream_poll};
  raise_fd_limit(scfg.max_clients);
  sse_hub events{scfg, url};
  events.count_clients_in(probe->sse_clients);
  if (auto err = events.start()) {
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    return fail(err);
  }

  notifier listener{url, scheduler};
  listener.start();
  db_pool pool{sys, url, static_cast<size_t>(*pool_size),
               static_cast<size_t>(*writers), scheduler};
  metrics->watch_pool(pool.usage());
  http_config hcfg;
  hcfg.host = opts.get("HTTP_HOST");
  hcfg.port = static_cast<uint16_t>(*http_port);
  hcfg.threads = static_cast<size_t>(*http_threads);
  hcfg.version = ORCH_VERSION;
  hcfg.image_tag = opts.get("IMAGE_TAG");
  hcfg.echo_message = opts.get("ECHO_MESSAGE");
  hcfg.docs_dir = opts.get("DOCS_DIR");
  http_server http{http_context{hcfg, url, &pool, scheduler, probe,
                                pipelines, opts.get("WORK_ROOT"),
                                &events, metrics}};
  auto port = http.start();
  if (!port) {
    listener.stop();
    pool.stop();
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    return fail(port.error());
  }
  spdlog::info("http listening on {}:{}", hcfg.host, *port);

  int sig = 0;
  sigwait(&signals, &sig);
  // Drain: /ready answers 503 from now on, requests in flight finish, then
  // the scheduler persists what it holds and hands back its claims. Its
  // workers notice the closed connection and re-register elsewhere, keeping
  // their jobs (whose leases outlive the move).
  spdlog::info("received {}: draining", strsignal(sig));
  probe->draining = true;
  // Event streams end now; their clients resume elsewhere.
  events.stop();
  auto deadline = std::chrono::steady_clock::now() + defaults::http_drain_timeout;
  while (probe->requests_in_flight > 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  if (probe->requests_in_flight > 0)
    spdlog::warn("{} requests still in flight after the drain timeout",
                 probe->requests_in_flight.load());
  http.stop();
  listener.stop();
  {
    caf::scoped_actor self{sys};
    self->request(scheduler, std::chrono::seconds{10}, drain_atom::value)
      .receive([](drain_done_atom) {},
               [](caf::error& err) {
                 spdlog::warn("scheduler did not drain cleanly: {}",
                              render(err));
               });
  }
  pool.stop();
  caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
  sys.middleman().unpublish(scheduler, *bound);
  spdlog::info("api-node stopped");
  return 0;
}

} // namespace orch::api
