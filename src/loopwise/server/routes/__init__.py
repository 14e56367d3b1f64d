"""The REST API's routes, one module per area; each route is a thin call to the store."""
