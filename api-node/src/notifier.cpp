#include "orch/api/notifier.hpp"

#include "orch/defaults.hpp"
#include "orch/messages.hpp"

#include <caf/send.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

namespace orch::api {

namespace {

class wake_receiver : public pqxx::notification_receiver {
public:
  wake_receiver(pqxx::connection_base& c, caf::actor scheduler)
    : pqxx::notification_receiver(c, "orch_jobs"),
      scheduler_(std::move(scheduler)) {
    // nop
  }

  void operator()(const std::string&, int) override {
    caf::anon_send(scheduler_, wake_atom::value);
  }

private:
  caf::actor scheduler_;
};

// orch_cancel carries the id of a running job whose cancel was accepted.
class cancel_receiver : public pqxx::notification_receiver {
public:
  cancel_receiver(pqxx::connection_base& c, caf::actor scheduler)
    : pqxx::notification_receiver(c, "orch_cancel"),
      scheduler_(std::move(scheduler)) {
    // nop
  }

  void operator()(const std::string& payload, int) override {
    caf::anon_send(scheduler_, cancel_atom::value, payload);
  }

private:
  caf::actor scheduler_;
};

} // namespace

notifier::notifier(std::string database_url, caf::actor scheduler)
  : url_(std::move(database_url)), scheduler_(std::move(scheduler)) {
  // nop
}

notifier::~notifier() {
  stop();
}

void notifier::start() {
  thread_ = std::thread{[this] { run(); }};
}

void notifier::stop() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
}

void notifier::run() {
  auto backoff = defaults::db_reconnect_min;
  while (!stop_) {
    try {
      pqxx::connection conn{url_};
      wake_receiver receiver{conn, scheduler_};
      cancel_receiver cancels{conn, scheduler_};
      spdlog::info("notifier: listening on channels orch_jobs, orch_cancel");
      backoff = defaults::db_reconnect_min;
      // Anything submitted while we were not listening: look once.
      caf::anon_send(scheduler_, wake_atom::value);
      while (!stop_)
        conn.await_notification(1, 0);
    } catch (const std::exception& e) {
      if (stop_)
        break;
      spdlog::warn("notifier: {}; reconnecting in {} ms", e.what(),
                   backoff.count());
      for (auto waited = std::chrono::milliseconds{0};
           waited < backoff && !stop_; waited += std::chrono::milliseconds{50})
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
      backoff = std::min(backoff * 2,
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                           defaults::db_reconnect_max));
    }
  }
}

} // namespace orch::api
