// A worker-node impostor for tests: connects to a scheduler over CAF's
// middleman and registers either with another protocol version or with
// message types the scheduler does not know. Prints the reply and exits 0
// when it was refused, 1 when it was accepted, 2 on other errors.
//
//   foreign_worker PORT version|types

#include "orch/messages.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <iostream>

namespace {

// A hello from some future protocol, under a type name the scheduler does
// not have.
struct future_hello {
  uint32_t protocol = 99;
  std::string worker_id = "foreign";
  std::string shiny_new_field = "x";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, future_hello& x) {
  return f(caf::meta::type_name("orch.v99.worker_hello"), x.protocol,
           x.worker_id, x.shiny_new_field);
}

struct config : caf::actor_system_config {
  config() {
    orch::register_message_types(*this);
    add_message_type<future_hello>("orch.v99.worker_hello");
    orch::enable_heartbeats(*this);
    load<caf::io::middleman>();
  }
};

} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: foreign_worker PORT version|types\n";
    return 2;
  }
  config cfg;
  caf::actor_system sys{cfg};
  auto port = static_cast<uint16_t>(std::stoi(argv[1]));
  auto sched = sys.middleman().remote_actor("127.0.0.1", port);
  if (!sched) {
    std::cerr << "cannot connect: " << sys.render(sched.error()) << "\n";
    return 2;
  }
  caf::scoped_actor self{sys};
  int result = 2;
  auto on_reply = [&](const std::string& id) {
    std::cout << "accepted by " << id << "\n";
    result = 1;
  };
  auto on_error = [&](caf::error& err) {
    std::cout << "refused: " << sys.render(err) << "\n";
    result = 0;
  };
  if (std::string{argv[2]} == "version") {
    orch::worker_hello hello;
    hello.protocol = orch::protocol_version + 1;
    hello.worker_id = "foreign";
    hello.host = "elsewhere";
    hello.slots = 1;
    self->request(*sched, std::chrono::seconds{10}, orch::register_atom::value,
                  hello)
      .receive(on_reply, on_error);
  } else {
    self->request(*sched, std::chrono::seconds{10}, orch::register_atom::value,
                  future_hello{})
      .receive(on_reply, on_error);
  }
  return result;
}
