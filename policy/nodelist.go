package policy

import (
	"context"
	"fmt"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// NodeAccess is what one identity may do on one node.
type NodeAccess struct {
	Node Node
	// Logins are the logins an ssh.session to the node would be allowed with, sorted;
	// empty when the node is out of reach.
	Logins []string
}

// NodeList answers, for the certificate of in (in.Cert, in.Cluster and in.Now; the action,
// login and node of in are ignored) and every node, the logins with which an ssh.session
// to that node would be allowed now: the answer of len(nodes) × logins single ssh.session
// decisions, in one evaluation (access.node_logins). Entry i is for nodes[i]. It backs
// `tether ls` and the web node list; it is neither cached nor logged. An evaluation error
// is returned, never a partial list.
func (e *Engine) NodeList(ctx context.Context, in *Input, nodes []Node) ([]NodeAccess, error) {
	p := e.cur.Load()
	if p == nil {
		return nil, ErrNoBundle
	}
	req := *in
	req.Action, req.Login, req.Node, req.RemoteCluster = ActionSSHSession, "", nil, nil
	if err := req.Validate(); err != nil {
		return nil, err
	}
	terms := make([]*ast.Term, len(nodes))
	for i := range nodes {
		one := Input{Action: ActionSSHSession, Cluster: req.Cluster, Now: req.Now, Node: &nodes[i]}
		if err := one.Validate(); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		terms[i] = ast.NewTerm(namedLabels(nodes[i].Name, nodes[i].Labels))
	}
	id, err := e.identity(ctx, p, &req)
	if err != nil {
		return nil, err
	}
	st := &stage{identity: id.value, now: ast.Number(strconv.FormatInt(req.Now.UnixNano(), 10)), nodes: ast.NewArray(terms...),
		nameFree: ast.Boolean(p.denyIgnoresNodeName)}
	v, err := e.evalStage(ctx, p, p.plannedFunc(stageNodes), p.nodes, st, req.valueWithCert(id.cert), req.Now,
		ast.NewTerm(st.identity), ast.NewTerm(st.nodes), ast.NewTerm(st.now), ast.NewTerm(st.nameFree))
	if err != nil {
		return nil, fmt.Errorf("evaluating %s: %w", nodesQuery, err)
	}
	arr, ok := v.(*ast.Array)
	if !ok || arr.Len() != len(nodes) {
		return nil, fmt.Errorf("%s returned %s, want one entry per node", nodesQuery, ast.ValueName(v))
	}
	out := make([]NodeAccess, len(nodes))
	for i := range nodes {
		logins, ok := arr.Elem(i).Value.(*ast.Array)
		if !ok {
			return nil, fmt.Errorf("%s[%d] is not an array", nodesQuery, i)
		}
		out[i] = NodeAccess{Node: nodes[i], Logins: make([]string, logins.Len())}
		for j := range out[i].Logins {
			s, ok := logins.Elem(j).Value.(ast.String)
			if !ok {
				return nil, fmt.Errorf("%s[%d][%d] is not a string", nodesQuery, i, j)
			}
			out[i].Logins[j] = string(s)
		}
	}
	return out, nil
}
