/**
 * The demo's generation worker: the library's engine worker (the page talks to it through
 * createWorkerEngine), and for tests and the curious a message `'lose-device'` that destroys
 * every device of this worker, as a GPU reset would.
 */
import '../src/worker.js';

const devices: GPUDevice[] = [];
const requestDevice = GPUAdapter.prototype.requestDevice;
GPUAdapter.prototype.requestDevice = async function (this: GPUAdapter, descriptor?: GPUDeviceDescriptor) {
  const device = await requestDevice.call(this, descriptor);
  devices.push(device);
  return device;
};

self.addEventListener('message', (event: MessageEvent) => {
  if (event.data === 'lose-device') for (const device of devices) device.destroy();
});
