// Allure 3 configuration used by pytest_inference.report.html.render_html (`allure generate
// --config <this file> --output <dir> <allure-results>`).
//
// A plain object rather than `defineConfig({...})` from "allure": this file ships inside the
// Python package, where Node cannot resolve the "allure" module; defineConfig is the
// identity function (@allurereport/plugin-api), so the object is the same config.
// `output` is given on the command line.
export default {
  name: "pytest-inference",
  plugins: {
    awesome: {
      options: {
        singleFile: true,
        reportName: "pytest-inference",
        groupBy: ["parentSuite", "suite", "subSuite"],
        // open steps and attachments (the claim JSON and its chart) on the test page
        stepTreeExpansion: "expanded",
      },
    },
  },
};
