"""The gateway's OpenAPI 3.1 document, derived at run time from the app's routes, and its docs.

`model` is how a route declares what the routes themselves cannot tell (its query parameters,
scopes, answers); `catalog` holds those declarations beside the route tables they describe,
keyed by endpoint, and `commands` derives the command routes' from their specs and Avro
schemas. `document` walks `app.routes` and builds the document; `pages` serves it and the
Swagger UI page at /api/docs.
"""
