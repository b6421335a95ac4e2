#include "orch/codec.hpp"

#include "orch/defaults.hpp"
#include "orch/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace orch::codec {

namespace {

using nlohmann::json;

bool valid_pipeline_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

const char* type_name(const json& x) {
  switch (x.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "nothing";
    default: return "a number";
  }
}

// Checks nesting depth and that no string holds a NUL character (PostgreSQL
// cannot store one). Returns an error message or an empty string.
// `depth` counts containers: the parameters object itself is level 1.
std::string check_value(const json& x, size_t depth) {
  if ((x.is_object() || x.is_array()) && depth > defaults::max_parameters_depth)
    return "must not nest deeper than "
           + std::to_string(defaults::max_parameters_depth) + " levels";
  if (x.is_string()) {
    if (x.get_ref<const std::string&>().find('\0') != std::string::npos)
      return "strings must not contain the NUL character (\\u0000)";
  } else if (x.is_object()) {
    for (auto& [key, value] : x.items()) {
      if (key.find('\0') != std::string::npos)
        return "keys must not contain the NUL character (\\u0000)";
      if (auto msg = check_value(value, depth + 1); !msg.empty())
        return msg;
    }
  } else if (x.is_array()) {
    for (auto& value : x)
      if (auto msg = check_value(value, depth + 1); !msg.empty())
        return msg;
  } else if (x.is_number_float() && !std::isfinite(x.get<double>())) {
    return "numbers must be finite";
  }
  return {};
}

} // namespace

std::string hash_hex(std::string_view str) {
  // FNV-1a, 64 bit: stable across processes and builds.
  uint64_t h = 0xcbf29ce484222325ull;
  for (auto c : str) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(h));
  return buf;
}

size_t utf8_length(std::string_view str) {
  size_t n = 0;
  for (auto c : str)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80)
      ++n;
  return n;
}

caf::expected<job_submission> parse_submission(std::string_view body) {
  json doc;
  try {
    doc = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    return make_error(ec::malformed_json, e.what());
  }
  if (!doc.is_object())
    return make_validation_error(
      {{"body", std::string{"must be a JSON object, got "} + type_name(doc)}});
  std::vector<field_error> errors;
  job_submission result;
  bool has_name = false;
  for (auto& [key, value] : doc.items()) {
    if (key == "pipeline_name") {
      has_name = true;
      if (!value.is_string()) {
        errors.push_back(
          {key, std::string{"must be a string, got "} + type_name(value)});
        continue;
      }
      auto& str = value.get_ref<const std::string&>();
      if (str.empty() || str.size() > defaults::max_pipeline_name) {
        errors.push_back({key, "must be 1 to "
                                 + std::to_string(defaults::max_pipeline_name)
                                 + " characters long"});
        continue;
      }
      bool ok = true;
      for (auto c : str)
        ok = ok && valid_pipeline_char(c);
      if (!ok) {
        errors.push_back({key, "may contain only A-Z, a-z, 0-9, '_', '.' "
                               "and '-'"});
        continue;
      }
      result.pipeline_name = str;
    } else if (key == "parameters") {
      if (!value.is_object()) {
        errors.push_back(
          {key, std::string{"must be an object, got "} + type_name(value)});
        continue;
      }
      if (auto msg = check_value(value, 1); !msg.empty()) {
        errors.push_back({key, msg});
        continue;
      }
      auto str = value.dump();
      if (str.size() > defaults::max_parameters_bytes) {
        errors.push_back(
          {key, "must be at most "
                  + std::to_string(defaults::max_parameters_bytes)
                  + " bytes when serialized, got "
                  + std::to_string(str.size())});
        continue;
      }
      result.parameters_json = std::move(str);
    } else if (key == "description") {
      if (value.is_null())
        continue;
      if (!value.is_string()) {
        errors.push_back({key, std::string{"must be a string or null, got "}
                                 + type_name(value)});
        continue;
      }
      auto& str = value.get_ref<const std::string&>();
      if (utf8_length(str) > defaults::max_description) {
        errors.push_back({key, "must be at most "
                                 + std::to_string(defaults::max_description)
                                 + " characters long"});
        continue;
      }
      if (str.find('\0') != std::string::npos) {
        errors.push_back(
          {key, "must not contain the NUL character (\\u0000)"});
        continue;
      }
      result.description = str;
    } else if (key == "priority") {
      if (!value.is_number_integer()) {
        errors.push_back(
          {key, std::string{"must be an integer, got "} + type_name(value)});
        continue;
      }
      bool in_range = false;
      int64_t v = 0;
      if (value.is_number_unsigned()) {
        auto u = value.get<uint64_t>();
        in_range = u <= static_cast<uint64_t>(defaults::max_priority);
        v = in_range ? static_cast<int64_t>(u) : 0;
      } else {
        v = value.get<int64_t>();
        in_range = v >= defaults::min_priority && v <= defaults::max_priority;
      }
      if (!in_range) {
        errors.push_back({key, "must be between "
                                 + std::to_string(defaults::min_priority)
                                 + " and "
                                 + std::to_string(defaults::max_priority)});
        continue;
      }
      result.priority = static_cast<int32_t>(v);
    } else if (key == "max_attempts") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1
          || value.get<int64_t>() > defaults::max_max_attempts
          || (value.is_number_unsigned()
              && value.get<uint64_t>() > defaults::max_max_attempts)) {
        errors.push_back({key, "must be an integer from 1 to "
                                 + std::to_string(defaults::max_max_attempts)});
        continue;
      }
      result.max_attempts = value.get<int32_t>();
    } else if (key == "retry_backoff_seconds") {
      if (!value.is_number() || !(value.get<double>() >= 0)
          || value.get<double>() > defaults::max_retry_backoff_seconds) {
        errors.push_back(
          {key, "must be a number from 0 to "
                  + std::to_string(
                    static_cast<int>(defaults::max_retry_backoff_seconds))});
        continue;
      }
      result.retry_backoff_seconds = value.get<double>();
    } else if (key == "timeout_seconds") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1
          || value.get<int64_t>() > defaults::max_timeout_seconds
          || (value.is_number_unsigned()
              && value.get<uint64_t>() > defaults::max_timeout_seconds)) {
        errors.push_back(
          {key, "must be an integer from 1 to "
                  + std::to_string(defaults::max_timeout_seconds)});
        continue;
      }
      result.timeout_seconds = value.get<int32_t>();
    } else {
      errors.push_back({key, "unknown field"});
    }
  }
  if (!has_name)
    errors.push_back({"pipeline_name", "is required"});
  if (!errors.empty())
    return make_validation_error(std::move(errors));
  result.request_hash = hash_hex(doc.dump());
  return result;
}

json to_json(const job& x) {
  auto opt_time = [](const std::optional<micros>& t) -> json {
    return t ? json(format_rfc3339(*t)) : json(nullptr);
  };
  auto opt_str = [](const std::optional<std::string>& s) -> json {
    return s ? json(*s) : json(nullptr);
  };
  json params;
  try {
    params = json::parse(x.parameters_json);
  } catch (const json::exception&) {
    params = json::object();
  }
  return json{
    {"id", x.id},
    {"status", to_string(x.status)},
    {"pipeline_name", x.pipeline_name},
    {"parameters", std::move(params)},
    {"description", opt_str(x.description)},
    {"priority", x.priority},
    {"attempt", x.attempt},
    {"worker_id", opt_str(x.worker_id)},
    {"created_at", format_rfc3339(x.created_at)},
    {"updated_at", format_rfc3339(x.updated_at)},
    {"started_at", opt_time(x.started_at)},
    {"completed_at", opt_time(x.completed_at)},
    {"error_message", opt_str(x.error_message)},
    {"max_attempts", x.max_attempts},
    {"retry_backoff_seconds", x.retry_backoff_seconds},
    {"timeout_seconds", x.timeout_seconds},
    {"next_attempt_at", opt_time(x.next_attempt_at)},
    {"cancel_requested", x.cancel_requested},
    {"executor", x.executor},
    {"progress", x.progress ? json{{"completed", x.progress->completed},
                                   {"total", x.progress->total},
                                   {"percent", progress_percent(*x.progress)}}
                            : json(nullptr)},
    {"waiting_reason", opt_str(x.waiting_reason)},
    {"outputs_url", "/jobs/" + x.id + "/outputs"},
  };
}

double progress_percent(const job_progress& x) {
  if (x.total <= 0)
    return 0;
  auto pct = 100.0 * static_cast<double>(x.completed)
             / static_cast<double>(x.total);
  return std::round(std::clamp(pct, 0.0, 100.0) * 10) / 10;
}

void append_json_string(std::string& out, std::string_view str) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (auto ch : str) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_json(std::string& out, const job& x) {
  auto key = [&](const char* k) {
    out += '"';
    out += k;
    out += "\":";
  };
  auto str = [&](const char* k, const std::string& v) {
    key(k);
    append_json_string(out, v);
    out += ',';
  };
  auto opt_str = [&](const char* k, const std::optional<std::string>& v) {
    key(k);
    if (v)
      append_json_string(out, *v);
    else
      out += "null";
    out += ',';
  };
  auto time = [&](const char* k, const std::optional<micros>& v) {
    key(k);
    if (v) {
      out += '"';
      out += format_rfc3339(*v);
      out += '"';
    } else {
      out += "null";
    }
    out += ',';
  };
  auto num = [&](const char* k, auto v) {
    key(k);
    out += std::to_string(v);
    out += ',';
  };
  out += '{';
  str("id", x.id);
  str("status", to_string(x.status));
  str("pipeline_name", x.pipeline_name);
  key("parameters");
  out += x.parameters_json.empty() ? "{}" : x.parameters_json;
  out += ',';
  opt_str("description", x.description);
  num("priority", x.priority);
  num("attempt", x.attempt);
  opt_str("worker_id", x.worker_id);
  time("created_at", x.created_at);
  time("updated_at", x.updated_at);
  time("started_at", x.started_at);
  time("completed_at", x.completed_at);
  opt_str("error_message", x.error_message);
  num("max_attempts", x.max_attempts);
  key("retry_backoff_seconds");
  out += nlohmann::json(x.retry_backoff_seconds).dump();
  out += ',';
  num("timeout_seconds", x.timeout_seconds);
  time("next_attempt_at", x.next_attempt_at);
  key("cancel_requested");
  out += x.cancel_requested ? "true" : "false";
  out += ',';
  str("executor", x.executor);
  key("progress");
  if (x.progress) {
    out += "{\"completed\":";
    out += std::to_string(x.progress->completed);
    out += ",\"total\":";
    out += std::to_string(x.progress->total);
    out += ",\"percent\":";
    out += nlohmann::json(progress_percent(*x.progress)).dump();
    out += '}';
  } else {
    out += "null";
  }
  out += ',';
  opt_str("waiting_reason", x.waiting_reason);
  key("outputs_url");
  append_json_string(out, "/jobs/" + x.id + "/outputs");
  out += '}';
}

namespace {

constexpr char b64[]
  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (auto c : in) {
    buf = (buf << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += b64[(buf >> bits) & 0x3F];
    }
  }
  if (bits > 0)
    out += b64[(buf << (6 - bits)) & 0x3F];
  return out;
}

std::optional<std::string> unbase64url(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (auto c : in) {
    auto pos = std::string_view{b64}.find(c);
    if (pos == std::string_view::npos)
      return std::nullopt;
    buf = (buf << 6) | static_cast<uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xFF);
    }
  }
  return out;
}

constexpr std::string_view cursor_prefix = "v1:";

} // namespace

std::string encode_cursor(int64_t seq) {
  return base64url(std::string{cursor_prefix} + std::to_string(seq));
}

caf::expected<int64_t> decode_cursor(std::string_view cursor) {
  auto bad = [] {
    return make_validation_error({{"cursor", "is not a cursor issued by this "
                                             "API (use next_cursor)"}});
  };
  if (cursor.empty() || cursor.size() > 64)
    return bad();
  auto raw = unbase64url(cursor);
  if (!raw || raw->compare(0, cursor_prefix.size(), cursor_prefix) != 0)
    return bad();
  auto digits = std::string_view{*raw}.substr(cursor_prefix.size());
  if (digits.empty() || digits.size() > 18)
    return bad();
  int64_t seq = 0;
  for (auto c : digits) {
    if (c < '0' || c > '9')
      return bad();
    seq = seq * 10 + (c - '0');
  }
  // Reject non-canonical spellings so that each position has one cursor.
  if (encode_cursor(seq) != cursor)
    return bad();
  return seq;
}

} // namespace orch::codec
