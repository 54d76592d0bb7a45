"""`kubectl lane dashboard`: a page served on loopback with the user's own kubeconfig.

`views` turns live objects into what the page draws (pure, built on `lanes.graph` and the
status verbs' views); `cluster` watches the API server and carries out the buttons through
the verbs' own code; `metrics` asks Prometheus the analysis' built-in queries over time;
`server` serves the built page (`static/`, made from `web/` by `make dashboard`), a JSON
snapshot, a server-sent event stream and the actions.
"""
