// Make the built-in fetch of Node.js 18 to 23 use HTTPS_PROXY, HTTP_PROXY
// and NO_PROXY, as Node.js 24 does with NODE_USE_ENV_PROXY=1. Load it
// before the program: node --require ./proxy-preload.cjs agent.js
// (needs the undici package, 6.11 or later: npm install undici@6).
const { EnvHttpProxyAgent, setGlobalDispatcher } = require('undici');
setGlobalDispatcher(new EnvHttpProxyAgent());
