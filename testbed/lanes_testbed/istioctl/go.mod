// Pins the istioctl the generated Istio objects are analyzed with; built as
// `go build istio.io/istio/istioctl/cmd/istioctl`. istio.io/istio is the 1.30 branch; its own
// requirements name pseudo-versions the module proxy does not serve, so the replaces pin the
// 1.30 releases of the same modules.
module lanes.dev/devistioctl

go 1.26.0

require istio.io/istio v0.0.0-20260826214018-9739e10eb9d7

replace (
	github.com/envoyproxy/go-control-plane/contrib => github.com/envoyproxy/go-control-plane/contrib v1.36.1-0.20260713214202-ca8ce173c36f
	github.com/envoyproxy/go-control-plane/envoy => github.com/envoyproxy/go-control-plane/envoy v1.38.0
	istio.io/api => istio.io/api v1.30.8
	istio.io/client-go => istio.io/client-go v1.30.8
)
