package call

import (
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
)

// lossyNetwork builds a virtual network (pion vnet) with two hosts whose
// inbound packets are dropped with the given chance in percent.
func lossyNetwork(t *testing.T, chance int) (hosts [2]*vnet.Net, filters [2]*vnet.LossFilter) {
	t.Helper()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.20.0.0/24", LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	for i, ip := range []string{"10.20.0.2", "10.20.0.3"} {
		nw, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := vnet.NewLossFilter(nw, chance)
		if err != nil {
			t.Fatal(err)
		}
		if err := wan.AddNet(f); err != nil {
			t.Fatal(err)
		}
		hosts[i], filters[i] = nw, f
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wan.Stop() })
	return hosts, filters
}

// TestMediaSurvivesFivePercentLoss: with 5% packet loss each way, the
// receiver sends NACKs, the sender retransmits, and media keeps flowing.
func TestMediaSurvivesFivePercentLoss(t *testing.T) {
	hosts, _ := lossyNetwork(t, 5)
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", func(c *Config) { c.Peer = PeerConfig{Net: hosts[0]} })
	b := n.addDevice(bob, "B1", func(c *Config) { c.Peer = PeerConfig{Net: hosts[1]} })
	out, in := connect(t, a, b, bob)

	u := b.waitUpdate(t, "NACKs sent", func(u Update) bool {
		return u.Event == "stats" && u.Stats.NACKsSent > 0 && u.Stats.PacketsReceived >= 100
	})
	first := *u.Stats
	a.waitUpdate(t, "NACKs answered", func(u Update) bool {
		return u.Event == "stats" && u.Stats.NACKsReceived > 0 && u.Stats.Retransmitted > 0
	})
	later := b.waitUpdate(t, "media after the NACKs", func(u Update) bool {
		return u.Event == "stats" && u.Stats.PacketsReceived >= first.PacketsReceived+300
	}).Stats
	sender := out.LastStats()
	t.Logf("receiver: %d packets, %d lost, %d NACKs sent; sender: %d NACKs received, %d retransmitted; RTT %v",
		later.PacketsReceived, later.PacketsLost, later.NACKsSent, sender.NACKsReceived, sender.Retransmitted, later.RTT)
	if in.State() != StateConnected {
		t.Fatalf("call is %s", in.State())
	}
}

// TestHangupICETimeout: the network fails after media flowed; ICE times out
// and the call ends with ice_timeout.
func TestHangupICETimeout(t *testing.T) {
	hosts, filters := lossyNetwork(t, 0)
	peer := func(h *vnet.Net) func(*Config) {
		return func(c *Config) {
			c.Peer = PeerConfig{Net: h, ICEDisconnectedTimeout: time.Second, ICEFailedTimeout: time.Second, ICEKeepalive: 200 * time.Millisecond}
		}
	}
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", peer(hosts[0]))
	b := n.addDevice(bob, "B1", peer(hosts[1]))
	out, _ := connect(t, a, b, bob)
	b.waitUpdate(t, "media", func(u Update) bool { return u.Event == "stats" && u.Stats.PacketsReceived > 20 })

	for _, f := range filters {
		if err := f.SetLossRate(100, true); err != nil {
			t.Fatal(err)
		}
	}
	ua, ub := a.ended(t, out.ID()), b.ended(t, out.ID())
	if ua.Reason != ReasonICETimeout || ub.Reason != ReasonICETimeout {
		t.Fatalf("calls ended with %s and %s, want ice_timeout", ua.Reason, ub.Reason)
	}
}
