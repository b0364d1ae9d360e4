package kmsfake

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Policy is a parsed key policy (or, for GenerateRandom, IAM policy). The subset of IAM JSON it reads:
//
//	{"Version": "2012-10-17", "Id": "...", "Statement": [ {statement}, ... ]}   (Statement may be one object)
//	statement: "Sid" (optional), "Effect": "Allow" | "Deny",
//	           "Principal": "*" | {"AWS": ARN | [ARN, ...]} (an account's :root ARN matches every principal of
//	           the account), "Action": "kms:Op" | [...] ("kms:*" and a trailing * allowed), "Resource": "*" | ARN | [...],
//	           "Condition" (optional): {"StringEquals" | "StringEqualsIgnoreCase": {KEY: VALUE | [VALUE, ...]}}
//	KEY: kms:RecipientAttestation:ImageSha384 or kms:RecipientAttestation:PCR0 .. PCR31
//
// Anything else (NotAction, NotPrincipal, other operators or condition keys, unknown fields) is an error when
// the policy is parsed, so that a test never runs under a policy the server silently half-understood. A
// condition whose key the request lacks (no verified Recipient) is false, as in IAM.
type Policy struct {
	statements []statement
}

type statement struct {
	allow      bool
	principals []string // "*" or ARNs
	actions    []string
	resources  []string
	conditions []condition
}

type condition struct {
	ignoreCase bool
	key        string
	values     []string
}

const (
	condImageSha384 = "kms:RecipientAttestation:ImageSha384"
	condPCRPrefix   = "kms:RecipientAttestation:PCR"
)

// ParsePolicy parses a policy document strictly (see Policy).
func ParsePolicy(doc string) (*Policy, error) {
	var raw struct {
		Version   string
		ID        string `json:"Id"`
		Statement rawOneOrMany[rawStatement]
	}
	if err := decodeStrict([]byte(doc), &raw); err != nil {
		return nil, fmt.Errorf("kmsfake: policy: %w", err)
	}
	if raw.Version != "2012-10-17" {
		return nil, fmt.Errorf("kmsfake: policy: Version %q, want 2012-10-17", raw.Version)
	}
	if len(raw.Statement) == 0 {
		return nil, fmt.Errorf("kmsfake: policy: no Statement")
	}
	p := &Policy{}
	for i, rs := range raw.Statement {
		st, err := rs.compile()
		if err != nil {
			return nil, fmt.Errorf("kmsfake: policy: statement %d: %w", i, err)
		}
		p.statements = append(p.statements, st)
	}
	return p, nil
}

type rawStatement struct {
	Sid       string
	Effect    string
	Principal rawPrincipal
	Action    rawOneOrMany[string]
	Resource  rawOneOrMany[string]
	Condition map[string]map[string]rawOneOrMany[string]
}

func (rs rawStatement) compile() (statement, error) {
	var st statement
	switch rs.Effect {
	case "Allow":
		st.allow = true
	case "Deny":
	default:
		return st, fmt.Errorf("effect %q is neither Allow nor Deny", rs.Effect)
	}
	if len(rs.Principal) == 0 {
		return st, fmt.Errorf("no Principal")
	}
	st.principals = rs.Principal
	if len(rs.Action) == 0 {
		return st, fmt.Errorf("no Action")
	}
	for _, a := range rs.Action {
		if !strings.HasPrefix(a, "kms:") || strings.Contains(strings.TrimSuffix(a, "*"), "*") {
			return st, fmt.Errorf("action %q is not kms:NAME (a trailing * allowed)", a)
		}
	}
	st.actions = rs.Action
	if len(rs.Resource) == 0 {
		return st, fmt.Errorf("no Resource")
	}
	st.resources = rs.Resource
	for op, keys := range rs.Condition {
		var ignoreCase bool
		switch op {
		case "StringEquals":
		case "StringEqualsIgnoreCase":
			ignoreCase = true
		default:
			return st, fmt.Errorf("condition operator %q is not StringEquals or StringEqualsIgnoreCase", op)
		}
		if len(keys) == 0 {
			return st, fmt.Errorf("condition operator %s has no keys", op)
		}
		for key, values := range keys {
			if !knownConditionKey(key) {
				return st, fmt.Errorf("condition key %q is not %s or %sN (N in 0..31)", key, condImageSha384, condPCRPrefix)
			}
			if len(values) == 0 {
				return st, fmt.Errorf("condition %s on %s has no value", op, key)
			}
			for _, v := range values {
				if v == "" {
					return st, fmt.Errorf("condition %s on %s has an empty value", op, key)
				}
			}
			st.conditions = append(st.conditions, condition{ignoreCase: ignoreCase, key: key, values: values})
		}
	}
	// Map order is random: keep evaluation and error messages stable.
	slices.SortFunc(st.conditions, func(a, b condition) int { return strings.Compare(a.key, b.key) })
	return st, nil
}

// knownConditionKey accepts ImageSha384 and PCR0..PCR31, matched case-insensitively as IAM matches keys.
func knownConditionKey(key string) bool {
	if strings.EqualFold(key, condImageSha384) {
		return true
	}
	if len(key) <= len(condPCRPrefix) || !strings.EqualFold(key[:len(condPCRPrefix)], condPCRPrefix) {
		return false
	}
	digits := key[len(condPCRPrefix):]
	n, err := strconv.Atoi(digits)
	return err == nil && n >= 0 && n < 32 && strconv.Itoa(n) == digits
}

// request is what a policy is evaluated against.
type request struct {
	principal string // the caller's ARN
	action    string // kms:Decrypt ...
	resource  string // the key ARN, or "*" for GenerateRandom
	context   map[string]string
}

// allows evaluates the policy: an explicit Deny that applies wins; otherwise an Allow that applies allows.
func (p *Policy) allows(r request) bool {
	allowed := false
	for _, st := range p.statements {
		if !st.applies(r) {
			continue
		}
		if !st.allow {
			return false
		}
		allowed = true
	}
	return allowed
}

func (st statement) applies(r request) bool {
	if !slices.ContainsFunc(st.principals, func(p string) bool { return principalMatches(p, r.principal) }) {
		return false
	}
	if !slices.ContainsFunc(st.actions, func(a string) bool { return actionMatches(a, r.action) }) {
		return false
	}
	if !slices.ContainsFunc(st.resources, func(res string) bool { return res == "*" || res == r.resource }) {
		return false
	}
	for _, c := range st.conditions {
		got, ok := contextValue(r.context, c.key)
		if !ok {
			return false
		}
		if !slices.ContainsFunc(c.values, func(v string) bool {
			if c.ignoreCase {
				return strings.EqualFold(v, got)
			}
			return v == got
		}) {
			return false
		}
	}
	return true
}

func contextValue(ctx map[string]string, key string) (string, bool) {
	for k, v := range ctx {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

func principalMatches(pattern, arn string) bool {
	if pattern == "*" || pattern == arn {
		return true
	}
	// arn:aws:iam::ACCOUNT:root stands for every principal of the account.
	account, ok := strings.CutSuffix(pattern, ":root")
	if !ok || !strings.HasPrefix(account, "arn:aws:iam::") {
		return false
	}
	acct := strings.TrimPrefix(account, "arn:aws:iam::")
	_, rest, ok := strings.Cut(arn, "::")
	return ok && strings.HasPrefix(rest, acct+":")
}

func actionMatches(pattern, action string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(strings.ToLower(action), strings.ToLower(prefix))
	}
	return strings.EqualFold(pattern, action)
}
