#pragma once

#include <string>
#include <vector>

namespace orch::api {

/// The OpenAPI 3.1 description of the REST API (api-node/share/openapi.json,
/// embedded at build time), served at GET /openapi.json.
const std::string& openapi_document();

} // namespace orch::api
