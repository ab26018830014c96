package sfu

import (
	"encoding/json"
	"net/http"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// nackCounter is an interceptor factory whose interceptors count the RTCP
// NACKs (RFC 4585 §6.2.1) written by the interceptors above them.
type nackCounter struct{ p *Participant }

func (f nackCounter) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackCounting{p: f.p}, nil
}

type nackCounting struct {
	interceptor.NoOp
	p *Participant
}

func (n *nackCounting) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attrs interceptor.Attributes) (int, error) {
		for _, pkt := range pkts {
			if nack, ok := pkt.(*rtcp.TransportLayerNack); ok {
				n.p.nacksSent.Add(1)
				for _, pair := range nack.Nacks {
					n.p.nackedPkts.Add(int64(len(pair.PacketList())))
				}
			}
		}
		return w.Write(pkts, attrs)
	})
}

// decodeError reads an API error body (bounded).
func decodeError(resp *http.Response, e any) error {
	return json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(e)
}
