package ca

import (
	"errors"
	"fmt"
)

// RotationPhase is where an authority is in a key rotation. The phases are Teleport's:
//
//	standby ──► init ──► update_clients ──► update_servers ──► standby
//	               └──────────┴──────────────────┴──► rollback ──► standby
//
// In each phase the keys are:
//
//	phase           signs   also trusted
//	standby         cur     –
//	init            old     new      the new key is published to everyone before it signs
//	update_clients  new     old      clients get certificates from the new key
//	update_servers  new     old      servers get certificates from the new key
//	standby         new     –        the old key is dropped: its certificates stop verifying
//	rollback        old     new      back to the old key; standby then drops the new one
//
// Moving the signing switch only after every party trusts the new key, and dropping the
// old key only after every party holds a certificate from the new one, is what lets a
// rotation happen without cutting live trust. The phases between init and the final
// standby differ only in which parties are expected to renew their certificates; the
// authority's keys are the same in update_clients and update_servers.
type RotationPhase string

// Rotation phases.
const (
	Standby       RotationPhase = "standby"
	Init          RotationPhase = "init"
	UpdateClients RotationPhase = "update_clients"
	UpdateServers RotationPhase = "update_servers"
	Rollback      RotationPhase = "rollback"
)

// nextPhases are the moves Rotate allows from each phase.
var nextPhases = map[RotationPhase][]RotationPhase{
	Standby:       {Init},
	Init:          {UpdateClients, Rollback},
	UpdateClients: {UpdateServers, Rollback},
	UpdateServers: {Standby, Rollback},
	Rollback:      {Standby},
}

// Rotate moves the authority to phase, which must be the next phase of a rotation or
// Rollback. Moving to Init generates the new key; moving to Standby drops the key that no
// longer signs. Save the authority after each move so a restart resumes the rotation.
func (a *Authority) Rotate(phase RotationPhase) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	allowed := false
	for _, p := range nextPhases[a.phase] {
		allowed = allowed || p == phase
	}
	if !allowed {
		return &phaseError{fmt.Errorf("rotating the %s: cannot go from %s to %s; the next phase is one of %v", a, a.phase, phase, nextPhases[a.phase])}
	}
	switch phase {
	case Init:
		k, err := a.newKey(a.lastGen + 1)
		if err != nil {
			return fmt.Errorf("rotating the %s: %w", a, err)
		}
		a.other, a.lastGen = k, k.gen
	case UpdateClients:
		a.signing, a.other = a.other, a.signing
	case UpdateServers:
		// Same keys as update_clients: servers renew their certificates now.
	case Rollback:
		if a.phase != Init {
			a.signing, a.other = a.other, a.signing
		}
	case Standby:
		a.other = nil
	}
	a.phase = phase
	return nil
}

// phaseError is a move Rotate does not allow from the current phase.
type phaseError struct{ error }

func (e *phaseError) Unwrap() error { return e.error }

// IsPhaseError reports whether err is Rotate refusing a move the current phase does not
// allow (the caller's mistake, not a failure).
func IsPhaseError(err error) bool {
	var pe *phaseError
	return errors.As(err, &pe)
}

// RotateSaved is Rotate followed by Save(dir), made on a copy that replaces the
// authority's keys and phase only once saved: when the move or the save fails, the
// authority in memory and on disk both stay at the previous phase. Callers serialise
// rotations of one authority.
func (a *Authority) RotateSaved(phase RotationPhase, dir string) error {
	a.mu.RLock()
	b := &Authority{Clock: a.Clock, cluster: a.cluster, typ: a.typ, alg: a.alg,
		phase: a.phase, signing: a.signing, other: a.other, lastGen: a.lastGen}
	a.mu.RUnlock()
	if err := b.Rotate(phase); err != nil {
		return err
	}
	if err := b.Save(dir); err != nil {
		return err
	}
	a.mu.Lock()
	a.phase, a.signing, a.other, a.lastGen = b.phase, b.signing, b.other, b.lastGen
	a.mu.Unlock()
	return nil
}
