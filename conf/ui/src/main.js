import "uplot/dist/uPlot.min.css";
import "./app.css";
document.getElementById("app").textContent = "Omni";
