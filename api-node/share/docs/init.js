// GET /docs: Swagger UI on this api-node's own /openapi.json. Everything is
// served by the api-node itself. The document's servers are replaced by
// this page's origin, so that "Try it out" calls the api-node that serves
// the page (the Content-Security-Policy allows no other); validatorUrl
// null keeps Swagger UI from calling its online validator.
fetch("/openapi.json")
  .then((res) => res.json())
  .then((spec) => {
    spec.servers = [{ url: window.location.origin, description: "this api-node" }];
    window.ui = SwaggerUIBundle({
      spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      validatorUrl: null,
      defaultModelsExpandDepth: 0,
    });
  })
  .catch((err) => {
    const p = document.createElement("p");
    p.textContent = "Could not load /openapi.json: " + err;
    document.getElementById("swagger-ui").append(p);
  });
