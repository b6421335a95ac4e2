// GET /docs: Swagger UI on this api-node's own /openapi.json. Everything
// is served by the api-node itself; validatorUrl null keeps Swagger UI
// from calling its online validator.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null,
  defaultModelsExpandDepth: 0,
  tryItOutEnabled: false,
});
