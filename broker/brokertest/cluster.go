package brokertest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

// clusterReadyTimeout bounds how long NewCluster and a restart wait for
// the JetStream meta group to have a leader that sees every node.
const clusterReadyTimeout = 30 * time.Second

// Cluster is an in-process nats-server cluster with JetStream, for replica
// and failover tests. Every node has its own store under t.TempDir(), a
// random loopback client port, a server name and an explicit route to
// every node's cluster port, the way nats-server's own cluster tests form
// theirs. Stop takes a node down and hands back its restart.
type Cluster struct {
	// URL lists every node's client URL, comma-separated, as
	// nats.Connect and RELAY_NATS_URL take it.
	URL string

	t     testing.TB
	name  string
	nodes []*clusterNode
}

type clusterNode struct {
	name        string
	dir         string
	clientPort  int
	clusterPort int
	srv         *server.Server // nil while stopped
}

// NewCluster starts an n-node JetStream cluster named after the test and
// waits until its meta group has a leader that counts all n nodes. The
// nodes are shut down when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("brokertest: a cluster needs at least one node, not %d", n)
	}
	c := &Cluster{t: t, name: "relaytest"}
	ports := FreePorts(t, n)
	for i := range n {
		c.nodes = append(c.nodes, &clusterNode{
			name:        fmt.Sprintf("n%d", i+1),
			dir:         t.TempDir(),
			clientPort:  server.RANDOM_PORT,
			clusterPort: ports[i],
		})
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.srv != nil {
				nd.srv.Shutdown()
				nd.srv.WaitForShutdown()
			}
		}
	})
	urls := make([]string, n)
	for i, nd := range c.nodes {
		c.start(nd)
		// Restarts reuse the port the first start picked, so URL stays
		// valid across them.
		nd.clientPort = nd.srv.Addr().(*net.TCPAddr).Port
		urls[i] = nd.srv.ClientURL()
	}
	c.URL = strings.Join(urls, ",")
	c.waitReady()
	return c
}

// Servers returns the nodes in order; a stopped node's entry is nil.
func (c *Cluster) Servers() []*server.Server {
	out := make([]*server.Server, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.srv
	}
	return out
}

// Index returns the position of the node named name (as stream and
// consumer cluster info name servers), or -1.
func (c *Cluster) Index(name string) int {
	for i, nd := range c.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// Stop shuts node i down and waits until it has stopped. The returned
// function starts it again with the same name, ports and store (so it
// rejoins with its streams and catches up), waits until the meta group
// has a leader that counts every node again and this node is current,
// and returns the new server.
func (c *Cluster) Stop(i int) (restart func() *server.Server) {
	c.t.Helper()
	if i < 0 || i >= len(c.nodes) || c.nodes[i].srv == nil {
		c.t.Fatalf("brokertest: no running cluster node %d", i)
	}
	nd := c.nodes[i]
	nd.srv.Shutdown()
	nd.srv.WaitForShutdown()
	nd.srv = nil
	return func() *server.Server {
		c.t.Helper()
		if nd.srv != nil {
			c.t.Fatalf("brokertest: cluster node %s restarted twice", nd.name)
		}
		c.start(nd)
		c.waitReady()
		return nd.srv
	}
}

// start starts nd and waits until it accepts client connections.
func (c *Cluster) start(nd *clusterNode) {
	c.t.Helper()
	routes := make([]*url.URL, 0, len(c.nodes))
	for _, other := range c.nodes {
		// The server ignores the route to itself; listing every node
		// keeps the route set the same on all of them.
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", other.clusterPort)})
	}
	srv, err := server.NewServer(&server.Options{
		ServerName:         nd.name,
		Host:               "127.0.0.1",
		Port:               nd.clientPort,
		JetStream:          true,
		StoreDir:           nd.dir,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		Cluster: server.ClusterOpts{
			Name: c.name,
			Host: "127.0.0.1",
			Port: nd.clusterPort,
		},
		Routes: routes,
		NoSigs: true,
		NoLog:  true,
	})
	if err != nil {
		c.t.Fatalf("brokertest: cluster node %s: %v", nd.name, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		c.t.Fatalf("brokertest: cluster node %s not ready for connections within 10s", nd.name)
	}
	nd.srv = srv
}

// waitReady waits until a meta leader sees every node as a peer and
// every running node's JetStream is current with the meta group.
func (c *Cluster) waitReady() {
	c.t.Helper()
	testkit.Eventually(c.t, clusterReadyTimeout, "JetStream cluster with a meta leader and every node current", func() bool {
		var leader *server.Server
		for _, nd := range c.nodes {
			if nd.srv != nil && nd.srv.JetStreamIsLeader() {
				leader = nd.srv
			}
		}
		if leader == nil || len(leader.JetStreamClusterPeers()) != len(c.nodes) {
			return false
		}
		for _, nd := range c.nodes {
			if nd.srv != nil && !nd.srv.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
}

// FreePorts returns n distinct loopback ports that were free a moment ago:
// the cluster ports must be known before any node starts, because every
// node's route list names all of them.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("brokertest: reserve a port: %v", err)
		}
		defer l.Close() // held until all are picked, so they differ
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
