import { useState, type FormEvent } from "react";
import { api, listAll, unwrap, type Project, type ResourceGroup } from "../../api/client";
import { useLoad } from "../../hooks";
import { ErrorBanner, Field, Section } from "../../components/ui";

export function ResourceGroupsPage() {
  const groups = useLoad(() => listAll<ResourceGroup>("/api/v1/resource-groups"), []);
  const projects = useLoad(() => listAll<Project>("/api/v1/projects"), []);
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const projectName = (id: string) => projects.data?.find((p) => p.id === id)?.name ?? id.slice(0, 8);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await unwrap(api.POST("/api/v1/resource-groups", { body: { name } }));
      setName("");
      groups.reload();
    } catch (err) {
      setError(err);
    }
  };
  const setProjects = async (g: ResourceGroup, project_ids: string[]) => {
    setError(null);
    try {
      await unwrap(
        api.PATCH("/api/v1/resource-groups/{group_id}", {
          params: { path: { group_id: g.id } },
          body: { project_ids },
        }),
      );
      groups.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <Section title="Create a resource group">
        <form className="row" onSubmit={create}>
          <Field label="Group name">
            {(id) => <input id={id} required value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <button type="submit" className="primary">
            Create group
          </button>
        </form>
      </Section>
      <ErrorBanner error={groups.error ?? error} />
      <Section title="Resource groups">
        <p className="muted">A group open to no project in particular may be used by every project.</p>
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Policy</th>
              <th>Placement</th>
              <th>Backfill wait</th>
              <th>Projects allowed</th>
            </tr>
          </thead>
          <tbody>
            {groups.data?.map((g) => (
              <tr key={g.id}>
                <td>{g.name}</td>
                <td>{g.scheduling_policy}</td>
                <td>{g.placement}</td>
                <td>{g.backfill_wait_s}s</td>
                <td>
                  <fieldset className="row compact">
                    <legend className="sr-only">Projects allowed in {g.name}</legend>
                    {projects.data?.map((p) => {
                      const ids = g.project_ids ?? [];
                      const on = ids.includes(p.id);
                      return (
                        <label key={p.id}>
                          <input
                            type="checkbox"
                            checked={on}
                            onChange={() =>
                              void setProjects(g, on ? ids.filter((x) => x !== p.id) : [...ids, p.id])
                            }
                          />{" "}
                          {projectName(p.id)}
                        </label>
                      );
                    })}
                    {!g.project_ids?.length ? <span className="muted">(all projects)</span> : null}
                  </fieldset>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </>
  );
}
