#include "orch/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace orch::metrics {

namespace {

void atomic_add(std::atomic<double>& x, double n) noexcept {
  auto old = x.load(std::memory_order_relaxed);
  while (!x.compare_exchange_weak(old, old + n, std::memory_order_relaxed))
    ; // retry with the value another thread wrote
}

// Help text: backslash and newline are escaped.
void append_help(std::string& out, const std::string& x) {
  for (auto c : x) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

} // namespace

const std::vector<double>& duration_buckets() {
  static const std::vector<double> xs{
    0.001, 0.005, 0.01,  0.025, 0.05,  0.1,   0.25,  0.5,   1,
    2.5,   5,     10,    30,    60,    120,   300,   600,   1800,
    3600,  7200,  14400, 28800, 86400};
  return xs;
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> xs{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,  0.1,    0.25,  0.5,
                                      1,      2.5,   5,      10};
  return xs;
}

std::string format_value(double x) {
  if (std::isnan(x))
    return "NaN";
  if (std::isinf(x))
    return x > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (x == std::floor(x) && std::fabs(x) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", x);
    return buf;
  }
  for (int precision : {15, 16, 17}) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x)
      break;
  }
  return buf;
}

std::string escape_label(const std::string& x) {
  std::string out;
  out.reserve(x.size());
  for (auto c : x) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

const char* to_string(metric_type x) {
  switch (x) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    case metric_type::histogram:
      return "histogram";
  }
  return "untyped";
}

// -- children -----------------------------------------------------------------

void counter::inc(double n) noexcept {
  if (n > 0)
    atomic_add(value_, n);
}

void gauge::inc(double n) noexcept {
  atomic_add(value_, n);
}

histogram::histogram(std::shared_ptr<const std::vector<double>> bounds)
  : bounds_(std::move(bounds)),
    counts_(new std::atomic<uint64_t>[bounds_->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i)
    counts_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double x) noexcept {
  if (std::isnan(x))
    return;
  // The first bound >= x: Prometheus buckets are "less than or equal".
  auto i = std::lower_bound(bounds_->begin(), bounds_->end(), x)
           - bounds_->begin();
  counts_[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, x);
}

histogram::snapshot histogram::collect() const {
  snapshot s;
  s.cumulative.reserve(bounds_->size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// -- families -----------------------------------------------------------------

family_base::family_base(std::string name, std::string help, metric_type type,
                         std::vector<std::string> label_names)
  : name_(std::move(name)),
    help_(std::move(help)),
    type_(type),
    label_names_(std::move(label_names)) {
  // nop
}

family_base::~family_base() = default;

void family_base::render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_help(out, help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += to_string(type_);
  out += '\n';
  render_samples(out);
}

void family_base::sample(std::string& out, const std::string& suffix,
                         const labels& xs, double value,
                         const char* extra_name,
                         const std::string& extra_value) const {
  out += name_;
  out += suffix;
  if (!label_names_.empty() || extra_name != nullptr) {
    out += '{';
    bool first = true;
    auto add = [&](const std::string& k, const std::string& v) {
      if (!first)
        out += ',';
      first = false;
      out += k;
      out += "=\"";
      out += escape_label(v);
      out += '"';
    };
    for (size_t i = 0; i < label_names_.size() && i < xs.size(); ++i)
      add(label_names_[i], xs[i]);
    if (extra_name != nullptr)
      add(extra_name, extra_value);
    out += '}';
  }
  out += ' ';
  out += format_value(value);
  out += '\n';
}

labels family_base::fit(labels xs) const {
  xs.resize(label_names_.size());
  return xs;
}

template <class T>
family<T>::family(std::string name, std::string help, metric_type type,
                  std::vector<std::string> label_names,
                  std::shared_ptr<const std::vector<double>> bounds)
  : family_base(std::move(name), std::move(help), type,
                std::move(label_names)),
    bounds_(std::move(bounds)) {
  // A family without labels always shows its one sample, zero or not.
  if (this->label_names().empty())
    get();
}

template <class T>
T& family<T>::with(const labels& values) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& slot = values.size() == label_names().size()
                 ? children_[values]
                 : children_[fit(values)];
  if (!slot) {
    if constexpr (std::is_same_v<T, histogram>)
      slot = std::make_unique<T>(bounds_);
    else
      slot = std::make_unique<T>();
  }
  return *slot;
}

template <class T>
void family<T>::render_samples(std::string& out) const {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& [xs, child] : children_) {
    if constexpr (std::is_same_v<T, histogram>) {
      auto snap = child->collect();
      auto& bounds = child->bounds();
      for (size_t i = 0; i < bounds.size(); ++i)
        sample(out, "_bucket", xs, static_cast<double>(snap.cumulative[i]),
               "le", format_value(bounds[i]));
      sample(out, "_bucket", xs, static_cast<double>(snap.count), "le",
             "+Inf");
      sample(out, "_sum", xs, snap.sum);
      sample(out, "_count", xs, static_cast<double>(snap.count));
    } else {
      sample(out, "", xs, child->value());
    }
  }
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

namespace {

// Samples computed at render time.
class callback_family : public family_base {
public:
  callback_family(std::string name, std::string help, metric_type type,
                  std::vector<std::string> label_names,
                  std::function<std::vector<metrics::sample>()> fn)
    : family_base(std::move(name), std::move(help), type,
                  std::move(label_names)),
      fn_(std::move(fn)) {
    // nop
  }

protected:
  void render_samples(std::string& out) const override {
    for (auto& s : fn_())
      family_base::sample(out, "", fit(s.label_values), s.value);
  }

private:
  std::function<std::vector<metrics::sample>()> fn_;
};

} // namespace

// -- registry -----------------------------------------------------------------

registry::registry() = default;

registry::~registry() = default;

template <class Family, class... Ts>
Family& registry::add(const std::string& name, Ts&&... xs) {
  std::lock_guard<std::mutex> guard{mtx_};
  // Registering a name again returns the existing family of that type.
  for (auto& f : families_)
    if (f->name() == name)
      if (auto* same = dynamic_cast<Family*>(f.get()))
        return *same;
  auto f = std::make_unique<Family>(name, std::forward<Ts>(xs)...);
  auto& ref = *f;
  families_.push_back(std::move(f));
  return ref;
}

family<counter>& registry::add_counter(const std::string& name,
                                       const std::string& help,
                                       std::vector<std::string> label_names) {
  return add<family<counter>>(name, help, metric_type::counter,
                              std::move(label_names));
}

family<gauge>& registry::add_gauge(const std::string& name,
                                   const std::string& help,
                                   std::vector<std::string> label_names) {
  return add<family<gauge>>(name, help, metric_type::gauge,
                            std::move(label_names));
}

family<histogram>&
registry::add_histogram(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names,
                        std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  bounds.erase(std::remove_if(bounds.begin(), bounds.end(),
                              [](double b) { return !std::isfinite(b); }),
               bounds.end());
  return add<family<histogram>>(
    name, help, metric_type::histogram, std::move(label_names),
    std::make_shared<const std::vector<double>>(std::move(bounds)));
}

void registry::add_callback(const std::string& name, const std::string& help,
                            metric_type type,
                            std::vector<std::string> label_names,
                            std::function<std::vector<sample>()> fn) {
  add<callback_family>(name, help, type, std::move(label_names),
                       std::move(fn));
}

void registry::gauge_fn(const std::string& name, const std::string& help,
                        std::function<double()> fn) {
  add_callback(name, help, metric_type::gauge, {},
               [fn = std::move(fn)] {
                 return std::vector<sample>{{{}, fn()}};
               });
}

void registry::counter_fn(const std::string& name, const std::string& help,
                          std::function<double()> fn) {
  add_callback(name, help, metric_type::counter, {},
               [fn = std::move(fn)] {
                 return std::vector<sample>{{{}, fn()}};
               });
}

std::string registry::render() const {
  std::string out;
  out.reserve(8192);
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& f : families_)
    f->render(out);
  return out;
}

} // namespace orch::metrics
