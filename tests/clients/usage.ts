// A frontend's use of the generated types: each line fails to compile if the document loses
// what a frontend relies on (typed problems, documented headers, decimal strings).
import type { components, paths } from "./schema";

type Schemas = components["schemas"];
type CreateCampaign = paths["/api/v1/calendar/campaigns"]["post"];
type PatchBudget = paths["/api/v1/budget/budgets/{budget_id}"]["patch"];
type ReadBudget = paths["/api/v1/budget/budgets/{budget_id}"]["get"];

export const retry: CreateCampaign["parameters"]["header"] = { "Idempotency-Key": "6f1c…" };
export const change: PatchBudget["parameters"]["header"] = { "if-match": '"3"' };
export const conditional: ReadBudget["parameters"]["header"] = { "If-None-Match": '"3"' };

export const invalid: CreateCampaign["responses"][422]["content"]["application/problem+json"] = {
  type: "urn:marketplan:problem:validation-error", title: "Invalid request", status: 422,
  detail: "The request has 1 invalid field(s).",
  errors: [{ in: "body", field: "name", detail: "Field required", type: "missing" }],
};
export const stale: PatchBudget["responses"][412]["content"]["application/problem+json"] =
  { type: "t", title: "Stale version", status: 412, detail: "GET it again" };
export const location: CreateCampaign["responses"][201]["headers"]["Location"] = "/api/v1/…";
export const total: Schemas["BudgetCreate"]["total"] = "1250000.00";
export const created: Schemas["CampaignPublic"]["id"] = "cmp_1";

export function describe(problem: Schemas["Problem"]): string {
  return (problem.errors ?? []).map((e) => `${e.in} ${e.field}: ${e.detail}`).join("; ");
}
