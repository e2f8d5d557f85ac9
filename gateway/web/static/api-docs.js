// Swagger UI on the gateway's own OpenAPI document. A script file rather than an inline
// one: the page's Content-Security-Policy allows scripts from this origin only.
// `validatorUrl: null` keeps Swagger UI from sending the document to validator.swagger.io.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    onComplete: () => { document.body.dataset.state = "rendered"; },
  });
});
