"""mpgrade as an LTI 1.3 tool inside ``mpgrade serve`` (docs/lti.md).

A platform (Canvas, Moodle) is registered once (``mpgrade lti register``); then a student who
opens the tool's link in the LMS is sent through the OIDC third-party login (``/lti/login``),
comes back with an id_token signed by the platform (``/lti/launch``), and sees the latest
result of their submission. When a job of a launched student finishes, its score goes to the
platform's gradebook through Assignment and Grade Services.

One module per concept, each small enough to read on its own:

- ``transport``: every request to a platform, through the callbacks' egress policy (no
  loopback, private or metadata address unless the operator allows it), size-capped, retried
  with backoff on 5xx.
- ``keys``: the tool's RSA key (made on first start, mode 0600) and its public JWK set.
- ``registry``: registered platforms (issuer, client id, deployments, endpoints, course).
- ``records``: what the tool remembers (login states, used nonces, launches, rosters, line
  items, sent scores), in the service's own database.
- ``platform_keys``: the platform's JWK set, fetched and cached.
- ``launch``: OIDC login initiation and id_token validation.
- ``token``: OAuth2 client-credentials tokens with a JWT client assertion.
- ``nrps``: Names and Role Provisioning (the roster: LMS ``sub`` -> student ids).
- ``ags``: line items (found or created by ``resourceId``) and scores, and the score policy.
- ``page``: the launch page (escaped HTML, a strict CSP).
- ``tool``: the pieces put together, and the FastAPI router ``create_app`` includes.

JWTs are made and checked by PyJWT (with ``cryptography``), never by hand.
"""
