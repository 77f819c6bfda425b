package tunnel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/gateway/trust"
	"github.com/tetherproject/tether/transport/frame"
)

// CA exchange (frame.ServiceTrustCAs): a rotation of the SSH CAs the other side of a trust
// keeps a copy of reaches it over the tunnel, as Teleport pushes rotated CAs to its
// leaves. The root sends its user and host CAs; the leaf stores them as its root's
// (auth.ReplacePeerCAs, which refuses anything but that root's own user and host CAs) and
// answers with its host CA, which the root stores the same way. The root starts an
// exchange when a leaf's tunnel comes up, when its own CAs change (checked every second),
// and every RootConfig.CAExchangeEvery (which is how soon a leaf's rotation reaches the
// root).

// DefaultCAExchangeEvery is how often a root exchanges CAs with each connected leaf
// unless RootConfig.CAExchangeEvery says otherwise.
const DefaultCAExchangeEvery = time.Minute

// caRetry is how long a root waits after a failed or refused exchange.
const caRetry = 30 * time.Second

// TrustCAs is the document each side writes on a ServiceTrustCAs stream; the leaf's
// answer may carry an error instead.
type TrustCAs struct {
	CAs   []trust.CA `json:"cas"`
	Error string     `json:"error,omitempty"`
}

// decodeTrustCAs reads one side's document strictly (unknown fields, trailing data, more
// than auth.MaxPeerCAs CAs are refused); the CAs themselves are checked by
// auth.ReplacePeerCAs.
func decodeTrustCAs(data []byte) (TrustCAs, error) {
	var doc TrustCAs
	if err := decodeStrict(data, &doc); err != nil {
		return TrustCAs{}, err
	}
	if len(doc.CAs) > auth.MaxPeerCAs {
		return TrustCAs{}, badAnswer("%d CAs, more than %d", len(doc.CAs), auth.MaxPeerCAs)
	}
	return doc, nil
}

// receiveCAs is the leaf's side: it stores root's CAs and answers with its own host CA,
// or with why it refused them (then it sends none).
func (l *Leaf) receiveCAs(root string) (func(net.Conn), error) {
	return func(c net.Conn) {
		receivePush(c, &l.caSlots, root, "CAs", func(data []byte, err error) []byte {
			var doc TrustCAs
			if err == nil {
				doc, err = decodeTrustCAs(data)
			}
			ans := TrustCAs{CAs: []trust.CA{}}
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err = l.cfg.Auth.ReplacePeerCAs(ctx, root, auth.PeerRoot, doc.CAs)
				cancel()
			}
			if err == nil {
				ans.CAs, err = l.cfg.Auth.OwnPeerCAs(auth.PeerRoot)
			}
			if err != nil {
				ans = TrustCAs{CAs: []trust.CA{}, Error: err.Error()}
				l.log.Warn("refused the CAs a root sent", "root", root, "err", err)
			}
			out, _ := json.Marshal(ans)
			return out
		})
	}, nil
}

// ExchangeCAs sends this root's user and host CAs to leaf, stores the host CA the leaf
// answers with, and returns how many of this root's copies changed.
func (r *Root) ExchangeCAs(ctx context.Context, leaf string) (int, error) {
	doc, err := r.caDoc()
	if err != nil {
		return 0, err
	}
	return r.exchangeCAsWith(ctx, leaf, doc)
}

// caDoc is the document a root sends on a CA exchange.
func (r *Root) caDoc() ([]byte, error) {
	own, err := r.cfg.Auth.OwnPeerCAs(auth.PeerLeaf)
	if err != nil {
		return nil, err
	}
	return json.Marshal(TrustCAs{CAs: own})
}

// exchangeCAsWith is ExchangeCAs with the root's document made.
func (r *Root) exchangeCAsWith(ctx context.Context, leaf string, doc []byte) (int, error) {
	data, err := r.push(ctx, leaf, frame.ServiceTrustCAs, "CAs", doc, MaxServiceAnswer+1)
	if err != nil {
		return 0, err
	}
	ans, err := decodeTrustCAs(data)
	if err != nil {
		return 0, err
	}
	if ans.Error != "" {
		return 0, fmt.Errorf("cluster %s refused this root's CAs: %s", leaf, ans.Error)
	}
	return r.cfg.Auth.ReplacePeerCAs(ctx, leaf, auth.PeerLeaf, ans.CAs)
}

// exchangeCAs starts an exchange with every connected leaf that has not had one since
// this root's CAs changed (a rotation phase), for RootConfig.CAExchangeEvery, or (after a
// failure) for caRetry.
func (r *Root) exchangeCAs(ctx context.Context) {
	connected := r.connectedLeaves()
	if len(connected) == 0 {
		return
	}
	// What this root sends, not its policy revision: a leaf whose answer changes (and so
	// rebuilds the bundle here) must not bring about another round with every leaf.
	doc, err := r.caDoc()
	if err != nil {
		r.log.Warn("reading this cluster's CAs for its leaves", "err", err)
		return
	}
	sum := sha256.Sum256(doc)
	every := r.cfg.CAExchangeEvery
	if every <= 0 {
		every = DefaultCAExchangeEvery
	}
	r.caRounds.start(connected, hex.EncodeToString(sum[:]), every, caRetry, func(leaf string) bool {
		xctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		changed, err := r.exchangeCAsWith(xctx, leaf, doc)
		cancel()
		switch {
		case err == nil:
			if changed > 0 {
				r.log.Info("a leaf's CA changed (rotation); stored", "leaf", leaf, "changed", changed)
			}
			return true
		case olderLeaf(err):
			r.log.Warn("a leaf does not exchange CAs (an older version?): CA rotations do not cross this trust; retrying",
				"leaf", leaf, "retry_in", caRetry, "err", err)
		case ctx.Err() == nil:
			r.log.Warn("exchanging CAs with a leaf; retrying", "leaf", leaf, "retry_in", caRetry, "err", err)
		}
		return false
	})
}
