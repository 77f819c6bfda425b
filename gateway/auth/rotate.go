package auth

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/resource"
)

// RotateCA moves the cluster's CA of type typ to phase (ca.Authority.Rotate: init,
// update_clients, update_servers, standby, rollback), saves it under CADir and rebuilds
// the policy bundle (the CA's fingerprints are in it), so that every part of this
// process signs and trusts by the new phase at once: the proxy's and the nodes' host
// certificates, user certificates, the TLS certificates it serves. It returns the CA's
// status after the move.
//
// The move is made on a copy of the authority and swapped in only once saved
// (ca.Authority.RotateSaved), so a failed save leaves both the running CA and the disk at
// the previous phase. Only this process rotates: replicas sharing a store keep their own
// copy of data_dir/ca and do not see the move.
//
// The openssh CA is local (no other cluster keeps a copy): the enforcement point signs
// each node connection's certificate with its signing key, node agents learn its keys by
// heartbeat, and OpenSSH servers take them from tetherctl auth export --type=openssh
// after init.
func (s *Service) RotateCA(ctx context.Context, typ ca.Type, phase ca.RotationPhase) (CAStatus, error) {
	var a *ca.Authority
	for _, x := range s.cfg.CA.Authorities() {
		if x.Type() == typ {
			a = x
		}
	}
	if a == nil {
		return CAStatus{}, errorf(ErrBadRequest, "no CA of type %q: give user, host, tls or openssh", typ)
	}
	if s.cfg.CADir == "" {
		return CAStatus{}, errorf(ErrBadRequest, "this cluster keeps no CA directory; rotation is not possible")
	}
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	from := a.Phase()
	if from == "" {
		from = ca.Standby
	}
	if phase == ca.Init {
		// Only a new rotation is refused: one under way may finish or roll back.
		if err := s.checkNoCopies(ctx, typ); err != nil {
			return CAStatus{}, err
		}
	}
	dir := filepath.Join(s.cfg.CADir, string(typ))
	if err := a.RotateSaved(phase, dir); err != nil {
		if ca.IsPhaseError(err) {
			return CAStatus{}, errorf(ErrBadRequest, "%v", err)
		}
		return CAStatus{}, fmt.Errorf("rotating the %s CA: %w", typ, err)
	}
	st := caStatus(a)
	s.log.Info("certificate authority rotated", "type", typ, "from", from, "phase", phase, "signing", st.Fingerprints[0])
	s.Audit(ctx, AuditEvent{Type: AuditCARotate, Fields: map[string]any{
		"type": string(typ), "from": string(from), "phase": string(phase), "signing": st.Fingerprints[0]}})
	if s.cfg.AfterRotate != nil {
		s.cfg.AfterRotate(ctx, typ)
	}
	if err := s.rebuildAfter(ctx); err != nil {
		return st, err
	}
	return st, nil
}

// checkNoCopies refuses to start rotating a CA another cluster keeps a copy of from the
// trust handshake when the tunnel does not carry its new keys there: the TLS CAs (a
// root keeps its leaves', a leaf its roots'), which authenticate the tunnel itself. The
// SSH user and host CAs reach the other side over the tunnel within a minute
// (ReplacePeerCAs), so they rotate as on a cluster alone; the holders are logged.
func (s *Service) checkNoCopies(ctx context.Context, typ ca.Type) error {
	var holders []string
	if typ == ca.HostCA || typ == ca.TLSCA {
		tcs, err := s.list(ctx, resourcesPrefix+resource.KindTrustedCluster+"/")
		if err != nil {
			return fmt.Errorf("checking the trusted clusters before a rotation: %w", err)
		}
		for _, r := range tcs {
			holders = append(holders, "root "+r.(*resource.TrustedCluster).Metadata.Name)
		}
	}
	if typ == ca.UserCA || typ == ca.HostCA || typ == ca.TLSCA {
		rcs, err := s.list(ctx, resourcesPrefix+resource.KindRemoteCluster+"/")
		if err != nil {
			return fmt.Errorf("checking the remote clusters before a rotation: %w", err)
		}
		for _, r := range rcs {
			holders = append(holders, "leaf "+r.(*resource.RemoteCluster).Metadata.Name)
		}
	}
	if len(holders) == 0 {
		return nil
	}
	sort.Strings(holders)
	if peerExchanged(typ) {
		s.log.Info("rotating a CA other clusters keep a copy of: they receive its keys over their tunnels within a minute",
			"type", typ, "clusters", holders)
		return nil
	}
	return errorf(ErrBadRequest, "the %s CA cannot be rotated while other clusters keep a copy of it from the trust handshake (%s): "+
		"it authenticates their tunnels, which carry the user and host CAs' rotations but not its own, so they would stop accepting this cluster at update_clients; "+
		"remove those trusts first (tetherctl rm trusted_cluster/ROOT on a leaf, rm rc/LEAF on a root) and establish them again after the rotation",
		typ, strings.Join(holders, ", "))
}
