// The 3D viewer of the home page and of each result page (NiiVue, served from our own origin).
// The canvas says what to show: data-volume (a NIfTI URL) and optionally data-mask (tumour overlay).
// Buttons with data-action drive it; window.radpathViewer exposes the state for tests and support.
import { Niivue, SLICE_TYPE } from "/vendor/niivue.js";

const ROTATE_STEP = 30;     // degrees per click
const ZOOM_STEP = 1.25;
const OPACITY_STEP = 0.2;
const CONTRAST_STEP = 0.15; // fraction of the intensity range moved in from each end

async function start() {
  const canvas = document.querySelector("canvas[data-testid=viewer]");
  if (!canvas) return;
  const status = document.getElementById("viewer-status");
  const say = (text) => { if (status) status.textContent = text; };
  // radiological convention (patient's right on the left) like every picture of the site, for 2D slices
  const nv = new Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: false, isColorbar: false,
                          loadingText: "loading", dragAndDropEnabled: false,
                          isRadiologicalConvention: true });
  await nv.attachToCanvas(canvas);
  const volumes = [{ url: canvas.dataset.volume, colormap: "gray", opacity: 0.8 }];
  if (canvas.dataset.mask) volumes.push({ url: canvas.dataset.mask, colormap: "red", opacity: 0.6, cal_min: 0.5, cal_max: 1 });
  try {
    await nv.loadVolumes(volumes);
  } catch (err) {
    say("The 3D view could not be loaded: " + err);
    return;
  }
  nv.setSliceType(SLICE_TYPE.RENDER);
  const base = nv.volumes[0];
  const lo = base.cal_min, hi = base.cal_max;  // NiiVue's initial window: background (0) stays below it
  const state = { azimuth: 110, elevation: 15, opacity: 0.8, contrast: 0, scale: 1.0 };
  // one NiiVue call (one redraw) per action: software WebGL on a server without a GPU is slow
  const span = hi - lo;
  const applyRotation = () => nv.setRenderAzimuthElevation(state.azimuth, state.elevation);
  const applyOpacity = () => nv.setOpacity(0, state.opacity);
  const applyContrast = () => {
    // more contrast: a narrower window; less: a wider one upwards only, so the background stays dark
    base.cal_min = lo + Math.max(0, state.contrast) * span;
    base.cal_max = hi - state.contrast * span;
    nv.updateGLVolume();
  };
  const applyScale = () => nv.setScale(state.scale);
  const actions = {
    "rotate-left": () => { state.azimuth = (state.azimuth - ROTATE_STEP + 360) % 360; applyRotation(); },
    "rotate-right": () => { state.azimuth = (state.azimuth + ROTATE_STEP) % 360; applyRotation(); },
    "opacity-up": () => { state.opacity = Math.min(1, state.opacity + OPACITY_STEP); applyOpacity(); },
    "opacity-down": () => { state.opacity = Math.max(0.1, state.opacity - OPACITY_STEP); applyOpacity(); },
    "contrast-up": () => { state.contrast = Math.min(0.45, state.contrast + CONTRAST_STEP); applyContrast(); },
    "contrast-down": () => { state.contrast = Math.max(-0.6, state.contrast - CONTRAST_STEP); applyContrast(); },
    "zoom-in": () => { state.scale = Math.min(4, state.scale * ZOOM_STEP); applyScale(); },
    "zoom-out": () => { state.scale = Math.max(0.3, state.scale / ZOOM_STEP); applyScale(); },
  };
  for (const button of document.querySelectorAll("button[data-action]")) {
    const action = button.dataset.action;
    button.addEventListener("click", () => {
      if (action === "save-image") nv.saveScene("radpath-view.png");
      else actions[action]();
    });
  }
  // mouse drag rotates too (NiiVue's own handler); keep our state in step with it
  nv.onAzimuthElevationChange = (az, el) => { state.azimuth = az; state.elevation = el; };
  applyRotation();
  window.radpathViewer = { nv, state };
  canvas.dataset.ready = "true";
  say("Drag to rotate; use the buttons to rotate, change opacity, contrast and zoom, or save the view as PNG.");
}

start();
