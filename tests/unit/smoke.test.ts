import { runProgram, stackConfig } from "./harness";
describe("smoke", () => {
    it("runs dev", async () => {
        const run = await runProgram(stackConfig("dev"));
        console.log(run.resources.map((r) => `${r.type} ${r.name}`).join("\n"));
        console.log(JSON.stringify(run.outputs, null, 1).slice(0, 1500));
        const cm = run.resources.find((r) => r.type === "kubernetes:core/v1:ConfigMap");
        console.log(cm?.inputs.data["pgbouncer.ini"]);
        const rel = run.resources.find((r) => r.type === "kubernetes:helm.sh/v3:Release");
        console.log(JSON.stringify(rel?.inputs, null, 1).slice(0, 2000));
    });
});
