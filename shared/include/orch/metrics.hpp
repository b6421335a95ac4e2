#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace orch::metrics {

/// The Content-Type of `registry::render()`: the Prometheus text exposition
/// format, version 0.0.4.
inline constexpr const char* content_type
  = "text/plain; version=0.0.4; charset=utf-8";

/// Label values, in the order of their family's label names.
using labels = std::vector<std::string>;

/// Histogram buckets for durations in seconds: 1 ms to 1 day.
const std::vector<double>& duration_buckets();

/// Histogram buckets for request latencies in seconds: 0.5 ms to 10 s.
const std::vector<double>& latency_buckets();

/// A monotonically increasing value. Lock-free.
class counter {
public:
  /// Adds `n` (negative values are ignored: a counter never goes down).
  void inc(double n = 1) noexcept;

  double value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<double> value_{0};
};

/// A value that goes up and down. Lock-free.
class gauge {
public:
  void set(double x) noexcept {
    value_.store(x, std::memory_order_relaxed);
  }

  void inc(double n = 1) noexcept;

  void dec(double n = 1) noexcept {
    inc(-n);
  }

  double value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<double> value_{0};
};

/// Observations counted into fixed buckets. Lock-free: one atomic increment
/// per observation plus the sum.
class histogram {
public:
  /// `bounds`: the upper bounds of the buckets, ascending, without +Inf.
  explicit histogram(std::shared_ptr<const std::vector<double>> bounds);

  void observe(double x) noexcept;

  struct snapshot {
    /// Cumulative counts per bound, then +Inf (== count).
    std::vector<uint64_t> cumulative;
    double sum = 0;
    uint64_t count = 0;
  };

  /// A consistent view for rendering: `count` is the +Inf bucket.
  snapshot collect() const;

  const std::vector<double>& bounds() const {
    return *bounds_;
  }

private:
  std::shared_ptr<const std::vector<double>> bounds_;
  /// Non-cumulative, one per bound plus the overflow bucket.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

enum class metric_type { counter, gauge, histogram };

/// "counter", "gauge" or "histogram".
const char* to_string(metric_type x);

/// One metric name with its help text, type and label names; rendered as
/// one block of the exposition.
class family_base {
public:
  family_base(std::string name, std::string help, metric_type type,
              std::vector<std::string> label_names);
  virtual ~family_base();
  family_base(const family_base&) = delete;
  family_base& operator=(const family_base&) = delete;

  const std::string& name() const {
    return name_;
  }

  metric_type type() const {
    return type_;
  }

  const std::vector<std::string>& label_names() const {
    return label_names_;
  }

  /// Appends `# HELP`, `# TYPE` and every sample.
  void render(std::string& out) const;

protected:
  /// Appends the samples only.
  virtual void render_samples(std::string& out) const = 0;

  /// Appends `name{labels} value\n`; `extra` is one more label (e.g. `le`).
  void sample(std::string& out, const std::string& suffix, const labels& xs,
              double value, const char* extra_name = nullptr,
              const std::string& extra_value = {}) const;

  /// Pads or cuts `xs` to the number of label names.
  labels fit(labels xs) const;

private:
  std::string name_;
  std::string help_;
  metric_type type_;
  std::vector<std::string> label_names_;
};

/// The children of one metric, one per label set. `with` takes the
/// family's lock: resolve a child once and keep the reference on hot paths.
/// Children live as long as the family.
template <class T>
class family : public family_base {
public:
  family(std::string name, std::string help, metric_type type,
         std::vector<std::string> label_names,
         std::shared_ptr<const std::vector<double>> bounds = nullptr);

  /// The child for `values` (created on first use). Thread-safe.
  T& with(const labels& values);

  /// The child of a family without labels.
  T& get() {
    return with({});
  }

protected:
  void render_samples(std::string& out) const override;

private:
  mutable std::mutex mtx_;
  std::map<labels, std::unique_ptr<T>> children_;
  std::shared_ptr<const std::vector<double>> bounds_;
};

/// A sample produced by a callback at render time.
struct sample {
  labels label_values;
  double value = 0;
};

/// A set of metric families, rendered together. Registration takes a lock
/// and is meant for startup; updating a child never touches the registry.
class registry {
public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  family<counter>& add_counter(const std::string& name,
                               const std::string& help,
                               std::vector<std::string> label_names = {});

  family<gauge>& add_gauge(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});

  family<histogram>& add_histogram(const std::string& name,
                                   const std::string& help,
                                   std::vector<std::string> label_names,
                                   std::vector<double> bounds);

  /// A counter or gauge whose samples `fn` produces at render time (e.g.
  /// from a cache of database reads). `fn` runs on the rendering thread.
  void add_callback(const std::string& name, const std::string& help,
                    metric_type type, std::vector<std::string> label_names,
                    std::function<std::vector<sample>()> fn);

  /// A gauge without labels read from `fn` at render time.
  void gauge_fn(const std::string& name, const std::string& help,
                std::function<double()> fn);

  /// A counter without labels read from `fn` at render time.
  void counter_fn(const std::string& name, const std::string& help,
                  std::function<double()> fn);

  /// Every family in registration order, in the text exposition format.
  std::string render() const;

private:
  template <class Family, class... Ts>
  Family& add(const std::string& name, Ts&&... xs);

  mutable std::mutex mtx_;
  std::vector<std::unique_ptr<family_base>> families_;
};

/// Formats a sample value as the exposition format wants it: integers
/// without exponent, `+Inf`, `-Inf`, `NaN`, else the shortest form that
/// reads back as the same double.
std::string format_value(double x);

/// Escapes a label value: backslash, double quote and newline.
std::string escape_label(const std::string& x);

} // namespace orch::metrics
