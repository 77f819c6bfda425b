package web

import (
	"net/http"

	"github.com/tetherproject/tether/ca"
)

// RotatePath is the admin route `tetherctl auth rotate` calls.
const RotatePath = "/v1/admin/authorities/rotate"

// RotateRequest moves one of the cluster's CAs to a rotation phase.
type RotateRequest struct {
	// Type is user, host, tls or openssh.
	Type string `json:"type"`
	// Phase is init, update_clients, update_servers, standby or rollback.
	Phase string `json:"phase"`
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	var req RotateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	st, err := s.cfg.Auth.RotateCA(r.Context(), ca.Type(req.Type), ca.RotationPhase(req.Phase))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
