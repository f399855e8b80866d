package console

import "net/http"

// routes is every API path the console serves; the OpenAPI test compares
// it with docs/fleetd-console-openapi.json.
func (c *Console) routes() []route {
	return []route{
		{http.MethodPost, "/api/v1/login", public, c.login},
		{http.MethodPost, "/api/v1/logout", anyWrite, c.logout},
		{http.MethodGet, "/api/v1/session", reader, c.getSession},

		{http.MethodGet, "/api/v1/hierarchy", reader, c.hierarchy},
		{http.MethodGet, "/api/v1/orgs", reader, c.listOrgs},
		{http.MethodPost, "/api/v1/orgs", writer, c.createOrg},
		{http.MethodGet, "/api/v1/orgs/{id}/sites", reader, c.listSites},
		{http.MethodPost, "/api/v1/orgs/{id}/sites", writer, c.createSite},
		{http.MethodGet, "/api/v1/sites/{id}/rooms", reader, c.listRooms},
		{http.MethodPost, "/api/v1/sites/{id}/rooms", writer, c.createRoom},

		{http.MethodGet, "/api/v1/devices", reader, c.listDevices},
		{http.MethodGet, "/api/v1/devices/{id}", reader, c.getDevice},
		{http.MethodPost, "/api/v1/devices/{id}/revoke", writer, c.revokeDevice},
		{http.MethodGet, "/api/v1/devices/{id}/commands", reader, c.listCommands},
		{http.MethodPost, "/api/v1/devices/{id}/commands", writer, c.enqueueCommand},
		{http.MethodGet, "/api/v1/commands/{id}", reader, c.getCommand},
		{http.MethodGet, "/api/v1/commands/{id}/logs", reader, c.downloadLogs},

		{http.MethodGet, "/api/v1/enrollment-codes", reader, c.listCodes},
		{http.MethodPost, "/api/v1/enrollment-codes", writer, c.createCode},
		{http.MethodDelete, "/api/v1/enrollment-codes/{hash}", writer, c.revokeCode},

		{http.MethodGet, "/api/v1/profiles/{kind}/{id}", reader, c.getProfile},
		{http.MethodPost, "/api/v1/profiles/{kind}/{id}/validate", reader, c.validateProfile},
		{http.MethodPut, "/api/v1/profiles/{kind}/{id}", writer, c.saveProfile},

		{http.MethodGet, "/api/v1/audit", reader, c.listAudit},

		{http.MethodGet, "/api/v1/releases", reader, c.listReleases},
		{http.MethodGet, "/api/v1/rollouts", reader, c.listRollouts},
		{http.MethodPost, "/api/v1/rollouts", writer, c.createRollout},
		{http.MethodGet, "/api/v1/rollouts/{id}", reader, c.getRollout},
		{http.MethodPost, "/api/v1/rollouts/{id}/pause", writer, c.pauseRollout},
		{http.MethodPost, "/api/v1/rollouts/{id}/resume", writer, c.resumeRollout},
		{http.MethodPost, "/api/v1/rollouts/{id}/abort", writer, c.abortRollout},
		{http.MethodGet, "/api/v1/sites/{id}/maintenance-window", reader, c.getSiteWindow},
		{http.MethodPut, "/api/v1/sites/{id}/maintenance-window", writer, c.setSiteWindow},

		{http.MethodGet, "/api/v1/accounts", adminOnly, c.listAccounts},
		{http.MethodPost, "/api/v1/accounts", adminOnly, c.createAccount},
		{http.MethodPatch, "/api/v1/accounts/{id}", adminOnly, c.updateAccount},
		{http.MethodPost, "/api/v1/accounts/{id}/password", adminOnly, c.resetPassword},
	}
}
