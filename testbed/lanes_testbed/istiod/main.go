// Command devistiod is the test bed's local istiod: Istio's own config generation serving ADS to
// stock Envoys, one per pod, so that routing in the test bed is decided by Istio's code alone.
//
// pilot-discovery itself does not build here (its bootstrap package imports a module the module
// proxy refuses), so this program does the few things bootstrap does: it wires an environment
// from an in-memory config store and Istio's ServiceEntry registry, registers the xDS generators,
// turns every config change into a push, and serves plaintext gRPC.
//
// Config comes either from the API server (--kubeconfig: Services, WorkloadEntries,
// ServiceEntries, Gateways, VirtualServices, DestinationRules, Sidecars, WasmPlugins) or, without
// it, from POST /push, which replaces the whole object set. Either way the object set is turned
// into Istio configs and written to the in-memory store as a diff.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubediscovery "k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	configaggregate "istio.io/istio/pilot/pkg/config/aggregate"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/kube/extensions"
	"istio.io/istio/pilot/pkg/config/memory"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	istiocore "istio.io/istio/pilot/pkg/networking/core"
	"istio.io/istio/pilot/pkg/serviceregistry/aggregate"
	"istio.io/istio/pilot/pkg/serviceregistry/serviceentry"
	"istio.io/istio/pilot/pkg/xds"
	v3 "istio.io/istio/pilot/pkg/xds/v3"
	"istio.io/istio/pkg/config"
	kubeconv "istio.io/istio/pkg/config/kube"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/kube"
	"istio.io/istio/pkg/kube/krt"
	"istio.io/istio/pkg/kube/multicluster"
	istiolog "istio.io/istio/pkg/log"
)

const (
	domainSuffix = "cluster.local"
	clusterID    = "Kubernetes"
	rootNS       = "istio-system"

	// Node metadata a test-bed sidecar sends besides Istio's own keys (see mesh/istiod.py).
	metaBind   = "LANES_BIND"   // the sidecar's own loopback address: inbound listeners bind here
	metaEgress = "LANES_EGRESS" // the loopback address its outbound listeners bind to
	metaPorts  = "LANES_PORTS"  // the pod's container ports, comma-separated
	// The label, unique to each pod, that the per-proxy Sidecar selects.
	proxyLabel = "testbed.lanes.dev/proxy"

	// Istio's own handlers (ServiceEntry registry, VirtualService index) run on queues of their
	// own; a change is taken as settled once they have had this long to raise their pushes.
	settleTime = 50 * time.Millisecond
)

var log = istiolog.RegisterScope("lanes", "the test bed's local istiod")

// storedKinds are the config kinds the object set is turned into.
var storedKinds = []config.GroupVersionKind{
	gvk.ServiceEntry, gvk.WorkloadEntry, gvk.Gateway, gvk.VirtualService,
	gvk.DestinationRule, gvk.Sidecar, gvk.WasmPlugin,
}

var watchedResources = []schema.GroupVersionResource{
	{Version: "v1", Resource: "services"},
	{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"},
	{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"},
	{Group: "networking.istio.io", Version: "v1", Resource: "gateways"},
	{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"},
	{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"},
	{Group: "networking.istio.io", Version: "v1", Resource: "sidecars"},
	{Group: "extensions.istio.io", Version: "v1alpha1", Resource: "wasmplugins"},
}

func main() {
	xdsAddress := flag.String("xds-address", "127.0.0.1:15010", "host:port of the plaintext ADS server")
	httpAddress := flag.String("http-address", "127.0.0.1:15014", "host:port of the debug and control HTTP server")
	kubeconfig := flag.String("kubeconfig", "", "watch this API server for config; without it, config comes from POST /push")
	wasmDir := flag.String("wasm-dir", filepath.Join(os.TempDir(), "lanes-istiod-wasm"), "where WasmPlugin modules given by URL are kept")
	flag.Parse()

	opts := istiolog.DefaultOptions()
	opts.OutputPaths = []string{"stderr"}
	opts.ErrorOutputPaths = []string{"stderr"}
	if err := istiolog.Configure(opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(*xdsAddress, *httpAddress, *kubeconfig, *wasmDir); err != nil {
		log.Errorf("%v", err)
		os.Exit(1)
	}
}

func run(xdsAddress, httpAddress, kubeconfig, wasmDir string) error {
	// Stock Envoy has none of istio-proxy's own filters, and there is no SDS for mTLS.
	features.MetadataExchange = false
	features.ALPNFilter = false
	m := mesh.DefaultMeshConfig()
	m.EnableAutoMtls = wrapperspb.Bool(false)
	m.EnableTracing = false

	stop := make(chan struct{})
	s, err := newServer(m, wasmDir, stop)
	if err != nil {
		return err
	}
	xdsListener, err := net.Listen("tcp", xdsAddress)
	if err != nil {
		return err
	}
	httpListener, err := net.Listen("tcp", httpAddress)
	if err != nil {
		return err
	}
	grpcServer := grpc.NewServer(grpc.StreamInterceptor(s.intercept))
	s.ds.Register(grpcServer)
	go func() {
		if err := grpcServer.Serve(xdsListener); err != nil {
			log.Errorf("ADS server: %v", err)
		}
	}()
	mux := http.NewServeMux()
	s.ds.InitDebug(mux, false, func() map[string]string { return nil })
	s.routes(mux, kubeconfig == "")
	go func() {
		if err := http.Serve(httpListener, mux); err != nil {
			log.Errorf("HTTP server: %v", err)
		}
	}()
	if kubeconfig != "" {
		if err := s.watch(kubeconfig, stop); err != nil {
			return err
		}
	}
	s.ready.Store(true)
	log.Infof("ready: ADS on %s, HTTP on %s", xdsListener.Addr(), httpListener.Addr())
	select {}
}

// server holds Istio's discovery server, the store it reads, and what the test bed needs on top:
// the object set, the per-proxy Sidecars and each ADS stream's ACK state.
type server struct {
	ds      *xds.DiscoveryServer
	store   model.ConfigStoreController
	wasmDir string
	ready   atomicBool

	mu        sync.Mutex
	base      []config.Config
	sidecars  map[string]config.Config // by node id
	refs      map[string]int           // ADS streams per node id
	version   int64
	changedAt map[int64]time.Time
	streams   map[*stream]struct{}
	modules   map[string]string // url+sha256 -> local file
}

type atomicBool struct {
	mu sync.Mutex
	v  bool
}

func (b *atomicBool) Store(v bool) { b.mu.Lock(); b.v = v; b.mu.Unlock() }
func (b *atomicBool) Load() bool   { b.mu.Lock(); defer b.mu.Unlock(); return b.v }

func newServer(m *meshconfig.MeshConfig, wasmDir string, stop chan struct{}) (*server, error) {
	env := model.NewEnvironment()
	env.Watcher = meshwatcher.NewTestWatcher(m)
	env.DomainSuffix = domainSuffix
	ds := xds.NewDiscoveryServer(env, map[string]string{}, krt.GlobalDebugHandler)
	ds.DebounceOptions.DebounceAfter = 10 * time.Millisecond
	ds.DiscoveryStartTime = time.Now()

	store := memory.NewController(collections.Pilot, true)
	// WasmPlugins reach the push context as TrafficExtensions, made by this controller.
	wasmPlugins := extensions.NewController(store, ds, krt.GlobalDebugHandler)
	configs, err := configaggregate.MakeWriteableCache([]model.ConfigStoreController{store, wasmPlugins}, store)
	if err != nil {
		return nil, err
	}
	vsController := model.NewVirtualServiceController(configs,
		model.VSControllerOptions{KrtDebugger: krt.GlobalDebugHandler, XDSUpdater: ds}, env.Watcher)

	// The ServiceEntry registry wants a cluster controller; one over an empty client, as Istio's
	// own test environment uses, since Kubernetes Services reach it as ServiceEntries.
	client := kube.NewFakeClient()
	clusters := multicluster.NewController(multicluster.ControllerOptions{
		Client:          client,
		ClusterID:       clusterID,
		SystemNamespace: rootNS,
		MeshConfig:      env.Watcher,
		Debugger:        krt.GlobalDebugHandler,
	})
	if err := clusters.Run(stop); err != nil {
		return nil, err
	}
	client.RunAndWait(stop)
	registry := aggregate.NewController(aggregate.Options{ConfigClusterID: clusterID})
	se := serviceentry.NewController(configs, ds, clusters, env.Watcher,
		serviceentry.WithClusterID(clusterID), serviceentry.WithKRTDebugger(krt.GlobalDebugHandler))
	registry.AddRegistry(se)

	env.ServiceDiscovery = registry
	env.ConfigStore = configs
	env.VirtualServiceController = vsController
	env.NetworksWatcher = meshwatcher.NewFixedNetworksWatcher(nil)
	env.AmbientIndexes = &model.NoopAmbientIndexes{}
	env.Init()
	if err := env.InitNetworksManager(ds); err != nil {
		return nil, err
	}

	// What bootstrap.InitGenerators registers for sidecars and gateways.
	cg := istiocore.NewConfigGenerator(ds.Cache)
	ds.Generators = map[string]model.XdsResourceGenerator{
		v3.ClusterType:                &xds.CdsGenerator{ConfigGenerator: cg},
		v3.ListenerType:               &xds.LdsGenerator{ConfigGenerator: cg},
		v3.RouteType:                  &xds.RdsGenerator{ConfigGenerator: cg},
		v3.EndpointType:               &xds.EdsGenerator{Cache: ds.Cache, EndpointIndex: env.EndpointIndex},
		v3.ExtensionConfigurationType: &xds.EcdsGenerator{ConfigGenerator: cg},
		v3.NameTableType:              &xds.NdsGenerator{ConfigGenerator: cg},
		v3.ProxyConfigType:            &xds.PcdsGenerator{TrustBundle: env.TrustBundle},
	}

	// Inbound listeners otherwise also accept mTLS, whose certificates come over SDS from
	// istio-agent, and Envoy waits for them forever; the test bed's mesh is plaintext.
	if _, err := store.Create(config.Config{
		Meta: config.Meta{
			GroupVersionKind: gvk.PeerAuthentication,
			Name:             "lanes-plaintext",
			Namespace:        rootNS,
			Domain:           domainSuffix,
		},
		Spec: &security.PeerAuthentication{
			Mtls: &security.PeerAuthentication_MutualTLS{Mode: security.PeerAuthentication_MutualTLS_DISABLE},
		},
	}); err != nil {
		return nil, err
	}

	go registry.Run(stop)
	go configs.Run(stop)
	go vsController.Run(stop)
	deadline := time.Now().Add(30 * time.Second)
	for !(configs.HasSynced() && registry.HasSynced() && vsController.HasSynced()) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("config store and registries did not sync within 30s")
		}
		time.Sleep(time.Millisecond)
	}
	se.ResyncEDS()
	ds.Start(stop)
	ds.CachesSynced()
	return &server{
		ds:        ds,
		store:     store,
		wasmDir:   wasmDir,
		sidecars:  map[string]config.Config{},
		refs:      map[string]int{},
		changedAt: map[int64]time.Time{},
		streams:   map[*stream]struct{}{},
		modules:   map[string]string{},
	}, nil
}

// replace makes `objects` the whole object set; it returns the new config version.
func (s *server) replace(objects []map[string]any) (int64, []string) {
	var configs []config.Config
	var skipped []string
	for _, obj := range objects {
		cfg, err := s.convert(obj)
		if err != nil {
			log.Errorf("%v", err)
			skipped = append(skipped, err.Error())
			continue
		}
		if cfg != nil {
			configs = append(configs, *cfg)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = configs
	return s.applyLocked(), skipped
}

// applyLocked writes the object set plus the per-proxy Sidecars to the store as a diff, then asks
// for a forced full push, as istiod does when it cannot tell what a change touches.
func (s *server) applyLocked() int64 {
	desired := map[string]config.Config{}
	for _, c := range s.base {
		desired[keyOf(c)] = c
	}
	for _, c := range s.sidecars {
		desired[keyOf(c)] = c
	}
	for _, kind := range storedKinds {
		for _, existing := range s.store.List(kind, "") {
			if _, keep := desired[keyOf(existing)]; !keep {
				if err := s.store.Delete(kind, existing.Name, existing.Namespace, nil); err != nil {
					log.Errorf("deleting %s: %v", keyOf(existing), err)
				}
			}
		}
	}
	keys := make([]string, 0, len(desired))
	for k := range desired {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := desired[k]
		existing := s.store.Get(c.GroupVersionKind, c.Name, c.Namespace)
		if existing == nil {
			if _, err := s.store.Create(c); err != nil {
				log.Errorf("creating %s: %v", k, err)
			}
			continue
		}
		if sameConfig(*existing, c) {
			continue
		}
		c.ResourceVersion = existing.ResourceVersion
		if _, err := s.store.Update(c); err != nil {
			log.Errorf("updating %s: %v", k, err)
		}
	}
	s.version++
	s.changedAt[s.version] = time.Now()
	s.ds.ConfigUpdate(&model.PushRequest{
		Full:   true,
		Forced: true,
		Reason: model.NewReasonStats(model.ConfigUpdate),
		Start:  time.Now(),
	})
	log.Infof("config version %d: %d objects, %d proxy sidecars", s.version, len(s.base), len(s.sidecars))
	return s.version
}

func keyOf(c config.Config) string {
	return c.GroupVersionKind.Kind + "/" + c.Namespace + "/" + c.Name
}

func sameConfig(a, b config.Config) bool {
	if !reflect.DeepEqual(a.Labels, b.Labels) || !reflect.DeepEqual(a.Annotations, b.Annotations) {
		return false
	}
	pa, okA := a.Spec.(proto.Message)
	pb, okB := b.Spec.(proto.Message)
	if okA && okB {
		return proto.Equal(pa, pb)
	}
	return reflect.DeepEqual(a.Spec, b.Spec)
}

// convert turns one Kubernetes-shaped object into the Istio config istiod would hold for it; nil
// for kinds the local istiod does not serve.
func (s *server) convert(obj map[string]any) (*config.Config, error) {
	kind, _ := obj["kind"].(string)
	switch kind {
	case "Service":
		return serviceEntryOf(obj)
	case "WasmPlugin":
		if err := s.localizeModule(obj); err != nil {
			return nil, err
		}
	case "ServiceEntry", "WorkloadEntry", "Gateway", "VirtualService", "DestinationRule", "Sidecar":
	default:
		return nil, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	configs, _, err := crd.ParseInputs(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", kind, nameOf(obj), err)
	}
	if len(configs) != 1 {
		return nil, fmt.Errorf("%s %s: not an Istio object", kind, nameOf(obj))
	}
	c := configs[0]
	// Short host names resolve in the object's namespace only with the domain set.
	c.Domain = domainSuffix
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	return &c, nil
}

func nameOf(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	ns, _ := meta["namespace"].(string)
	name, _ := meta["name"].(string)
	return ns + "/" + name
}

// serviceEntryOf makes of a Kubernetes Service what Istio's Kubernetes registry would serve: a
// mesh-internal host <name>.<ns>.svc.cluster.local whose endpoints are the workloads its selector
// picks (here WorkloadEntries, since the API server refuses loopback addresses in EndpointSlices).
func serviceEntryOf(obj map[string]any) (*config.Config, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var svc corev1.Service
	if err := json.Unmarshal(raw, &svc); err != nil {
		return nil, fmt.Errorf("Service %s: %v", nameOf(obj), err)
	}
	if svc.Namespace == "" {
		svc.Namespace = "default"
	}
	entry := &networking.ServiceEntry{
		Hosts:      []string{fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, domainSuffix)},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
	}
	if len(svc.Spec.Selector) > 0 {
		entry.WorkloadSelector = &networking.WorkloadSelector{Labels: svc.Spec.Selector}
	}
	for _, p := range svc.Spec.Ports {
		port := &networking.ServicePort{
			Number:   uint32(p.Port),
			Protocol: string(kubeconv.ConvertProtocol(p.Port, p.Name, p.Protocol, p.AppProtocol)),
			Name:     p.Name,
		}
		if p.Name == "" {
			port.Name = fmt.Sprintf("port-%d", p.Port)
		}
		if p.TargetPort.IntValue() > 0 {
			port.TargetPort = uint32(p.TargetPort.IntValue())
		}
		entry.Ports = append(entry.Ports, port)
	}
	return &config.Config{
		Meta: config.Meta{
			GroupVersionKind: gvk.ServiceEntry,
			Name:             "kube-service-" + svc.Name,
			Namespace:        svc.Namespace,
			Domain:           domainSuffix,
			Labels:           svc.Labels,
		},
		Spec: entry,
	}, nil
}

// localizeModule does what istio-agent does for a WasmPlugin given by URL: fetch the module once,
// check its sha256, and hand Envoy a local file. A module that cannot be fetched or does not match
// is not served: the WasmPlugin is left out.
func (s *server) localizeModule(obj map[string]any) error {
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		return nil
	}
	address, _ := spec["url"].(string)
	sum, _ := spec["sha256"].(string)
	if address == "" {
		return nil
	}
	path, err := s.fetchModule(address, sum)
	if err != nil {
		return fmt.Errorf("WasmPlugin %s: module %s not served: %v", nameOf(obj), address, err)
	}
	spec["url"] = "file://" + path
	return nil
}

func (s *server) fetchModule(address, sum string) (string, error) {
	key := address + "@" + sum
	s.mu.Lock()
	path, ok := s.modules[key]
	s.mu.Unlock()
	if ok {
		return path, nil
	}
	parsed, err := url.Parse(address)
	if err != nil {
		return "", err
	}
	var data []byte
	switch parsed.Scheme {
	case "file":
		data, err = os.ReadFile(parsed.Path)
	case "http", "https":
		data, err = download(address)
	default:
		return "", fmt.Errorf("scheme %q is not supported (http, https or file)", parsed.Scheme)
	}
	if err != nil {
		return "", err
	}
	got := sha256.Sum256(data)
	actual := hex.EncodeToString(got[:])
	if sum != "" && !strings.EqualFold(sum, actual) {
		return "", fmt.Errorf("sha256 mismatch: the WasmPlugin says %s, the module has %s", sum, actual)
	}
	if err := os.MkdirAll(s.wasmDir, 0o755); err != nil {
		return "", err
	}
	path = filepath.Join(s.wasmDir, actual+".wasm")
	staging := path + ".tmp"
	if err := os.WriteFile(staging, data, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(staging, path); err != nil {
		return "", err
	}
	log.Infof("fetched wasm module %s (sha256 %s) to %s", address, actual, path)
	s.mu.Lock()
	s.modules[key] = path
	s.mu.Unlock()
	return path, nil
}

func download(address string) ([]byte, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get(address)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", address, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// sidecarFor builds the Sidecar a test-bed proxy gets from its node metadata. Istio binds a proxy's
// listeners to its pod's addresses, which a pod's own network namespace keeps apart; the local
// node runs every pod in one namespace, so each proxy is told where to bind: outbound listeners on
// its egress address, inbound ones on its own address, forwarding to the app on the pod IP.
func sidecarFor(node *core.Node) (config.Config, bool) {
	parts := strings.Split(node.GetId(), "~")
	if len(parts) != 4 || parts[0] != "sidecar" {
		return config.Config{}, false
	}
	fields := node.GetMetadata().GetFields()
	egress := fields[metaEgress].GetStringValue()
	bind := fields[metaBind].GetStringValue()
	namespace := fields["NAMESPACE"].GetStringValue()
	pod := fields["POD_NAME"].GetStringValue()
	if egress == "" || bind == "" || namespace == "" || pod == "" {
		return config.Config{}, false
	}
	spec := &networking.Sidecar{
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{proxyLabel: pod + "." + namespace}},
		Egress: []*networking.IstioEgressListener{{
			Bind:        egress,
			CaptureMode: networking.CaptureMode_NONE,
			Hosts:       []string{"*/*"},
		}},
	}
	for _, field := range strings.Split(fields[metaPorts].GetStringValue(), ",") {
		port, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || port <= 0 {
			continue
		}
		spec.Ingress = append(spec.Ingress, &networking.IstioIngressListener{
			Port:            &networking.SidecarPort{Number: uint32(port), Protocol: "HTTP", Name: fmt.Sprintf("http-%d", port)},
			Bind:            bind,
			DefaultEndpoint: fmt.Sprintf("0.0.0.0:%d", port),
		})
	}
	return config.Config{
		Meta: config.Meta{
			GroupVersionKind: gvk.Sidecar,
			Name:             "lanes-proxy-" + pod,
			Namespace:        namespace,
			Domain:           domainSuffix,
		},
		Spec: spec,
	}, true
}

func (s *server) connected(st *stream, node *core.Node) {
	s.mu.Lock()
	s.streams[st] = struct{}{}
	sidecar, ok := sidecarFor(node)
	if !ok {
		s.mu.Unlock()
		return
	}
	s.refs[st.id]++
	s.sidecars[st.id] = sidecar
	version := s.applyLocked()
	s.mu.Unlock()
	// Istio computes the proxy's scope from the push context when this first request returns, so
	// let the push that carries its Sidecar be made first.
	deadline := time.Now().Add(3 * time.Second)
	for !s.settled(version) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) disconnected(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.streams, st)
	if st.id == "" {
		return
	}
	if _, ok := s.sidecars[st.id]; !ok {
		return
	}
	s.refs[st.id]--
	if s.refs[st.id] <= 0 {
		delete(s.refs, st.id)
		delete(s.sidecars, st.id)
		s.applyLocked()
	}
}

// settled: the change that made `version` has had time to raise its pushes, and every push asked
// for is in the push context.
func (s *server) settled(version int64) bool {
	s.mu.Lock()
	at, ok := s.changedAt[version]
	current := s.version
	s.mu.Unlock()
	if version > current {
		return false
	}
	if ok && time.Since(at) < settleTime {
		return false
	}
	return s.ds.InboundUpdates.Load() == s.ds.CommittedUpdates.Load()
}

// stream wraps one ADS stream to see what Istio sends and what the proxy ACKs or NACKs.
type stream struct {
	grpc.ServerStream
	s  *server
	id string

	mu     sync.Mutex
	sent   map[string]string // type URL -> nonce of the last response
	acked  map[string]string // type URL -> last nonce ACKed
	nacked map[string]nack   // type URL -> last NACK
}

type nack struct {
	nonce, message string
}

func (s *server) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	st := &stream{ServerStream: ss, s: s, sent: map[string]string{}, acked: map[string]string{}, nacked: map[string]nack{}}
	err := handler(srv, st)
	s.disconnected(st)
	return err
}

func (st *stream) RecvMsg(m any) error {
	if err := st.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	req, ok := m.(*discovery.DiscoveryRequest)
	if !ok {
		return nil
	}
	if st.id == "" && req.GetNode().GetId() != "" {
		st.id = req.GetNode().GetId()
		st.s.connected(st, req.GetNode())
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, seen := st.sent[req.TypeUrl]; !seen {
		st.sent[req.TypeUrl] = ""
	}
	if req.ResponseNonce == "" {
		return nil
	}
	if req.ErrorDetail != nil {
		st.nacked[req.TypeUrl] = nack{req.ResponseNonce, req.ErrorDetail.GetMessage()}
		log.Warnf("%s NACKed %s: %s", st.id, req.TypeUrl, req.ErrorDetail.GetMessage())
	} else {
		st.acked[req.TypeUrl] = req.ResponseNonce
	}
	return nil
}

func (st *stream) SendMsg(m any) error {
	if resp, ok := m.(*discovery.DiscoveryResponse); ok {
		st.mu.Lock()
		st.sent[resp.TypeUrl] = resp.Nonce
		st.mu.Unlock()
	}
	return st.ServerStream.SendMsg(m)
}

// pending says why the stream's proxy is not yet in sync with the latest push context; empty
// when it is.
func (st *stream) pending(ds *xds.DiscoveryServer) []string {
	var out []string
	latest := ds.Env.PushContext()
	behind := true
	for _, con := range ds.Clients() {
		proxy := con.Proxy()
		if proxy != nil && (proxy.ID == proxyIDOf(st.id)) && proxy.LastPushContext == latest {
			behind = false
		}
	}
	if behind {
		out = append(out, fmt.Sprintf("%s: the latest push has not reached it yet", st.id))
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	types := make([]string, 0, len(st.sent))
	for t := range st.sent {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		sent := st.sent[t]
		switch {
		case sent == "":
			out = append(out, fmt.Sprintf("%s: %s requested, nothing sent yet", st.id, t))
		case st.nacked[t].nonce == sent:
			out = append(out, fmt.Sprintf("%s: %s NACKed: %s", st.id, t, st.nacked[t].message))
		case st.acked[t] != sent:
			out = append(out, fmt.Sprintf("%s: %s sent, not ACKed yet", st.id, t))
		}
	}
	return out
}

// proxyIDOf turns a node id (type~ip~pod.ns~domain) into Istio's proxy id (pod.ns).
func proxyIDOf(nodeID string) string {
	parts := strings.Split(nodeID, "~")
	if len(parts) == 4 {
		return parts[2]
	}
	return nodeID
}

// synced lists why `version` is not yet in force on the named proxies (all connected ones when
// none are named); empty when it is.
func (s *server) synced(version int64, names []string) []string {
	if !s.settled(version) {
		return []string{fmt.Sprintf("config version %d is not yet in the push context (current %d)", version, s.currentVersion())}
	}
	s.mu.Lock()
	streams := make([]*stream, 0, len(s.streams))
	for st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	var out []string
	wanted := map[string]bool{}
	for _, n := range names {
		wanted[n] = false
	}
	for _, st := range streams {
		if st.id == "" {
			continue
		}
		if len(names) > 0 {
			_, byNode := wanted[st.id]
			_, byProxy := wanted[proxyIDOf(st.id)]
			if !byNode && !byProxy {
				continue
			}
			if byNode {
				wanted[st.id] = true
			}
			if byProxy {
				wanted[proxyIDOf(st.id)] = true
			}
		}
		out = append(out, st.pending(s.ds)...)
	}
	for _, n := range names {
		if !wanted[n] {
			out = append(out, fmt.Sprintf("%s: not connected", n))
		}
	}
	return out
}

func (s *server) currentVersion() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

func (s *server) proxies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := []string{}
	seen := map[string]bool{}
	for st := range s.streams {
		if st.id != "" && !seen[st.id] {
			seen[st.id] = true
			ids = append(ids, st.id)
		}
	}
	sort.Strings(ids)
	return ids
}

func (s *server) routes(mux *http.ServeMux, pushAllowed bool) {
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"version": s.currentVersion()})
	})
	mux.HandleFunc("/proxies", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"proxies": s.proxies()})
	})
	mux.HandleFunc("/synced", func(w http.ResponseWriter, r *http.Request) {
		version, err := strconv.ParseInt(r.URL.Query().Get("version"), 10, 64)
		if err != nil {
			http.Error(w, "version: "+err.Error(), http.StatusBadRequest)
			return
		}
		pending := s.synced(version, r.URL.Query()["proxy"])
		writeJSON(w, map[string]any{"synced": len(pending) == 0, "pending": pending, "version": s.currentVersion()})
	})
	mux.HandleFunc("/push", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST the whole object list", http.StatusMethodNotAllowed)
			return
		}
		if !pushAllowed {
			http.Error(w, "config comes from the API server (--kubeconfig); /push is off", http.StatusConflict)
			return
		}
		var objects []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&objects); err != nil {
			http.Error(w, "body: a JSON list of objects: "+err.Error(), http.StatusBadRequest)
			return
		}
		version, skipped := s.replace(objects)
		writeJSON(w, map[string]any{"version": version, "skipped": skipped})
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// servedResources are the watched resources the API server serves; one whose CRD is not
// installed is left out (and logged), so a partly installed mesh still gets what it has.
func servedResources(restConfig *rest.Config) ([]schema.GroupVersionResource, error) {
	client, err := kubediscovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	var served []schema.GroupVersionResource
	for _, gvr := range watchedResources {
		list, err := client.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
		found := false
		if err == nil {
			for _, r := range list.APIResources {
				found = found || r.Name == gvr.Resource
			}
		}
		if !found {
			log.Warnf("the API server does not serve %s; not watched (is its CRD installed?)", gvr)
			continue
		}
		served = append(served, gvr)
	}
	return served, nil
}

// watch makes the API server's objects the object set, re-read on every change (debounced).
func (s *server) watch(kubeconfig string, stop chan struct{}) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	served, err := servedResources(restConfig)
	if err != nil {
		return err
	}
	factory := dynamicinformer.NewDynamicSharedInformerFactory(client, 0)
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	for _, gvr := range served {
		if _, err := factory.ForResource(gvr).Informer().AddEventHandler(handler); err != nil {
			return err
		}
	}
	factory.Start(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for gvr, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("watching %s: not synced within 60s (is its CRD installed?)", gvr)
		}
	}
	resync := func() {
		var objects []map[string]any
		for _, gvr := range served {
			items, err := factory.ForResource(gvr).Lister().List(labels.Everything())
			if err != nil {
				log.Errorf("listing %s: %v", gvr, err)
				continue
			}
			for _, item := range items {
				if u, ok := item.(*unstructured.Unstructured); ok {
					objects = append(objects, u.DeepCopy().Object)
				}
			}
		}
		s.replace(objects)
	}
	resync()
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-changed:
				time.Sleep(10 * time.Millisecond)
				select {
				case <-changed:
				default:
				}
				resync()
			}
		}
	}()
	return nil
}
