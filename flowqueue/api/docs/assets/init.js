// Starts Swagger UI on flowqueue's /docs page. A file, not an inline script, so the
// page's Content-Security-Policy can forbid inline scripts. URLs are relative to the
// page, so the docs also work behind a proxy that serves the API under a path prefix.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // never send the schema to an outside validator
    presets: [SwaggerUIBundle.presets.apis],
  });
});
