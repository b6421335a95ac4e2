#include "orch/messages.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"

#include <caf/io/middleman.hpp>
#include <caf/timestamp.hpp>

namespace orch {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<inflight_job>("orch.v2.inflight_job");
  cfg.add_message_type<std::vector<inflight_job>>(
    "orch.v2.inflight_job_list");
  cfg.add_message_type<worker_hello>("orch.v2.worker_hello");
  cfg.add_message_type<job_assignment>("orch.v2.job_assignment");
  cfg.add_message_type<job_started>("orch.v2.job_started");
  cfg.add_message_type<job_log>("orch.v2.job_log");
  cfg.add_message_type<job_progress_report>("orch.v2.job_progress");
  cfg.add_message_type<job_finished>("orch.v2.job_finished");
  cfg.add_message_type<job_cancel>("orch.v2.job_cancel");
  cfg.add_message_type<field_error>("orch.field_error");
  cfg.add_message_type<std::vector<field_error>>("orch.field_error_list");
  cfg.add_error_category(ec_category, [](uint8_t code, caf::atom_value,
                                         const caf::message& ctx) {
    std::string result = to_string(static_cast<ec>(code));
    if (ctx.size() >= 1 && ctx.match_element<std::string>(0)) {
      result += ": ";
      result += ctx.get_as<std::string>(0);
    }
    return result;
  });
}

void enable_heartbeats(caf::actor_system_config& cfg) {
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{defaults::heartbeat_interval});
  cfg.set("middleman.connection-timeout",
          caf::timespan{defaults::connection_timeout});
}

void quiet_idle_threads(caf::actor_system_config& cfg) {
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
}

} // namespace orch
