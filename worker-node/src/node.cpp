#include "orch/worker/node.hpp"

#include "orch/config.hpp"
#include "orch/defaults.hpp"
#include "orch/error.hpp"
#include "orch/logging.hpp"
#include "orch/messages.hpp"
#include "orch/metrics_server.hpp"
#include "orch/worker/worker.hpp"
#include "orch/worker/executors.hpp"
#include "orch/catalog.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <algorithm>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace orch::worker {

namespace {

class node_config : public caf::actor_system_config {
public:
  node_config() {
    register_message_types(*this);
    enable_heartbeats(*this);
    quiet_idle_threads(*this);
    load<caf::io::middleman>();
    set("scheduler.max-threads", 1);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

std::string hostname() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

int fail(const caf::error& err) {
  spdlog::critical("{}", render(err));
  return 1;
}

} // namespace

int run_node(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto cpus = std::max(1u, std::thread::hardware_concurrency());
  options opts{
    "worker-node",
    "orch worker-node: connects to an api-node's scheduler and runs the jobs "
    "it assigns.",
    {
      {"SCHEDULER_HOST", "127.0.0.1",
       "address of an api-node's scheduler; a comma-separated list of "
       "host or host:port tries each in turn"},
      {"SCHEDULER_PORT", std::to_string(defaults::scheduler_port),
       "CAF port of the scheduler"},
      {"WORKER_ID", "", "unique name of this worker (default: hostname-pid)"},
      {"WORKER_SLOTS", std::to_string(cpus), "jobs run at once"},
      {"LOG_LEVEL", "info", "trace, debug, info, warn, error or off"},
      {"LOG_FORMAT", "text", "text or json"},
      {"MOCK_MIN_SECONDS", "10", "shortest mock run"},
      {"MOCK_MAX_SECONDS", "30", "longest mock run"},
      {"MOCK_SUCCESS_RATE", "0.8", "probability that a mock run succeeds"},
      {"DRAIN_SECONDS", "60",
       "on SIGTERM, time for running jobs to finish before they are handed "
       "back"},
      {"CANCEL_GRACE_SECONDS", "10",
       "time between SIGTERM and SIGKILL when a job is stopped"},
      {"WORK_ROOT", defaults::work_root,
       "job work directories: <job id>/attempt-<n> (share it with the "
       "api-nodes, which serve outputs from it)"},
      {"WORK_RETENTION_HOURS", "72",
       "finished work directories older than this are removed"},
      {"WORKER_EXECUTORS", "",
       "comma-separated executors to offer (default: mock, command, and "
       "snakemake/nextflow when found on PATH)"},
      {"METRICS_HOST", "0.0.0.0",
       "address GET /metrics (Prometheus) listens on"},
      {"METRICS_PORT", std::to_string(defaults::metrics_port),
       "port of GET /metrics; 0 picks a free one, off disables it"},
    }};
  if (auto err = opts.parse(argc, argv)) {
    std::cerr << "worker-node: " << render(err) << "\n";
    return 2;
  }
  if (opts.help_requested()) {
    opts.print_help(std::cout);
    return 0;
  }
  if (auto err = init_logging("worker-node", opts.get("LOG_LEVEL"),
                              opts.get("LOG_FORMAT"))) {
    std::cerr << "worker-node: " << render(err) << "\n";
    return 2;
  }
  worker_config cfg;
  auto port = opts.get_int("SCHEDULER_PORT", 1, 65535);
  if (!port)
    return fail(port.error());
  cfg.schedulers = parse_scheduler_addresses(opts.get("SCHEDULER_HOST"),
                                             static_cast<uint16_t>(*port));
  if (cfg.schedulers.empty())
    return fail(make_error(ec::invalid_configuration,
                           "SCHEDULER_HOST names no scheduler"));
  auto drain = opts.get_double("DRAIN_SECONDS", 0, 86400);
  if (!drain)
    return fail(drain.error());
  cfg.drain_timeout = std::chrono::milliseconds{
    static_cast<int64_t>(*drain * 1000)};
  auto grace = opts.get_double("CANCEL_GRACE_SECONDS", 0, 3600);
  if (!grace)
    return fail(grace.error());
  cfg.cancel_grace = std::chrono::milliseconds{
    static_cast<int64_t>(*grace * 1000)};
  auto retention = opts.get_double("WORK_RETENTION_HOURS", 0, 24 * 3650);
  if (!retention)
    return fail(retention.error());
  cfg.work_retention = std::chrono::milliseconds{
    static_cast<int64_t>(*retention * 3600 * 1000)};
  cfg.work_root = opts.get("WORK_ROOT");
  if (cfg.work_root.empty())
    return fail(make_error(ec::invalid_configuration, "WORK_ROOT is empty"));
  if (auto list = opts.get("WORKER_EXECUTORS"); !list.empty()) {
    cfg.executors.clear();
    std::stringstream in{list};
    for (std::string e; std::getline(in, e, ',');) {
      while (!e.empty() && e.front() == ' ')
        e.erase(0, 1);
      while (!e.empty() && e.back() == ' ')
        e.pop_back();
      if (e.empty())
        continue;
      if (std::find(std::begin(known_executors), std::end(known_executors), e)
          == std::end(known_executors))
        return fail(make_error(ec::invalid_configuration,
                               "WORKER_EXECUTORS: unknown executor " + e));
      cfg.executors.push_back(e);
    }
  } else {
    cfg.executors = detect_executors();
  }
  cfg.host = hostname();
  cfg.worker_id = opts.get("WORKER_ID");
  if (cfg.worker_id.empty())
    cfg.worker_id = cfg.host + "-" + std::to_string(getpid());
  auto slots = opts.get_int("WORKER_SLOTS", 1, 100000);
  if (!slots)
    return fail(slots.error());
  cfg.slots = static_cast<uint32_t>(*slots);
  auto min_s = opts.get_double("MOCK_MIN_SECONDS", 0, 1e7);
  if (!min_s)
    return fail(min_s.error());
  auto max_s = opts.get_double("MOCK_MAX_SECONDS", 0, 1e7);
  if (!max_s)
    return fail(max_s.error());
  auto rate = opts.get_double("MOCK_SUCCESS_RATE", 0, 1);
  if (!rate)
    return fail(rate.error());
  cfg.mock = mock_config{*min_s, *max_s, *rate};
  // METRICS_PORT: "off" (or an empty --metrics-port) disables the endpoint.
  std::optional<uint16_t> metrics_port;
  if (auto raw = opts.get("METRICS_PORT"); !raw.empty() && raw != "off") {
    auto p = opts.get_int("METRICS_PORT", 0, 65535);
    if (!p)
      return fail(p.error());
    metrics_port = static_cast<uint16_t>(*p);
  }
  cfg.metrics = std::make_shared<worker_metrics>(cfg.slots);
  metrics::metrics_server metrics_http{
    [m = cfg.metrics] { return m->registry.render(); }};
  if (metrics_port) {
    auto host = opts.get("METRICS_HOST");
    auto bound = metrics_http.start(host, *metrics_port);
    if (!bound)
      return fail(bound.error());
    spdlog::info("metrics listening on {}:{}", host, *bound);
  }

  node_config ccfg;
  caf::actor_system sys{ccfg};
  spdlog::info("worker-node {} starting: node {}, {} slots, scheduler {}:{}, "
               "executors {}, work in {}",
               cfg.worker_id, caf::to_string(sys.node()), cfg.slots,
               cfg.schedulers[0].host, cfg.schedulers[0].port,
               fmt::join(cfg.executors, ","), cfg.work_root);
  auto drain_timeout = cfg.drain_timeout;
  auto worker = spawn_worker(sys, cfg);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}: draining (up to {} ms)", strsignal(sig),
               drain_timeout.count());
  caf::scoped_actor self{sys};
  self->monitor(worker);
  self->send(worker, drain_atom::value);
  bool done = false;
  self->receive(
    [&](caf::down_msg&) { done = true; },
    caf::after(drain_timeout + std::chrono::seconds{15}) >> [&] {
      spdlog::error("drain did not finish in time; exiting anyway");
    });
  if (!done)
    caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  return done ? 0 : 1;
}

} // namespace orch::worker
