package auth

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/tetherproject/tether/ca"
)

// RotateCA moves the cluster's CA of type typ to phase (ca.Authority.Rotate: init,
// update_clients, update_servers, standby, rollback), saves it under CADir and rebuilds
// the policy bundle (the CA's fingerprints are in it), so that every part of this
// process signs and trusts by the new phase at once: the proxy's and the nodes' host
// certificates, user certificates, the TLS certificates it serves. It returns the CA's
// status after the move.
//
// The move is made on a copy read from disk and swapped in only once saved, so a failed
// save leaves both the running CA and the disk at the previous phase.
func (s *Service) RotateCA(ctx context.Context, typ ca.Type, phase ca.RotationPhase) (CAStatus, error) {
	var a *ca.Authority
	for _, x := range s.cfg.CA.Authorities() {
		if x.Type() == typ {
			a = x
		}
	}
	if a == nil {
		return CAStatus{}, errorf(ErrBadRequest, "no CA of type %q: give user, host or tls", typ)
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
	if err := s.rebuildAfter(ctx); err != nil {
		return st, err
	}
	return st, nil
}
