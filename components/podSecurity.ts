// Pod Security Admission for the namespaces that the program creates.

/**
 * The API server admits only pods that meet the "restricted" Pod Security Standard into these namespaces
 * (and warns and audits against it too). Every container the program declares (PgBouncer, the exporter, the
 * sidecars) and the shipped chart's app container run non-root, without privilege escalation, with every
 * capability dropped and the RuntimeDefault seccomp profile, so the strictest level costs nothing and stops a
 * values override from slipping a privileged container in.
 */
export const RESTRICTED_POD_SECURITY: Readonly<Record<string, string>> = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
};
